import type { IncomingHttpHeaders } from "node:http";
import { WeightedChoice } from "@mesh/balancer";
import type {
  BackendConfig,
  OutboundConfig,
  RouteConfig,
  ServiceConfig,
} from "../config/schema.js";
import { pathOf, RouteMatch } from "../http/route-match.js";
import { DEFAULT_ROUTE_NAME, routeNames } from "./route-name.js";

/** A route of a service, ready to match. */
export interface RouteEntry {
  /** Route label: `name`, or one derived from the match (see `routeNames`), or `default`. */
  name: string;
  /** The route config (undefined for the service's default route). */
  config: RouteConfig | undefined;
  match: RouteMatch;
  /** Backends this route splits across. */
  backends: BackendConfig[];
  /** @mesh/balancer's weighted choice over {@link RouteEntry.backends}. */
  split: WeightedChoice<BackendConfig>;
}

/** A service with its compiled routes. */
export interface ServiceEntry {
  config: ServiceConfig;
  routes: RouteEntry[];
  defaultRoute: RouteEntry;
}

/** Where a request goes. */
export interface RouteDecision {
  service: ServiceEntry;
  route: RouteEntry;
  backend: BackendConfig;
}

function serviceBackends(s: ServiceConfig): BackendConfig[] {
  if (s.backends !== undefined && s.backends.length > 0) return s.backends;
  return [
    { name: s.name, weight: 1, discovery: s.discovery as NonNullable<ServiceConfig["discovery"]> },
  ];
}

function entry(
  name: string,
  config: RouteConfig | undefined,
  backends: BackendConfig[],
  random: () => number,
): RouteEntry {
  return {
    name,
    config,
    match: new RouteMatch(config?.match ?? {}),
    backends,
    split: new WeightedChoice(
      backends.map((b) => ({ value: b, weight: b.weight })),
      random,
    ),
  };
}

/**
 * The outbound routing table: authority → service → route (first match wins) → weighted
 * backend. Pure: built from config, swapped whole on reload.
 */
export class RouteTable {
  private readonly byAuthority = new Map<string, ServiceEntry>();
  /** Services in config order. */
  readonly services: ServiceEntry[];

  constructor(config: OutboundConfig, random: () => number = Math.random) {
    this.services = config.services.map((s) => {
      const backends = serviceBackends(s);
      const names = routeNames(s.routes);
      const svc: ServiceEntry = {
        config: s,
        routes: s.routes.map((r, i) =>
          entry(names[i] as string, r, r.backends ?? backends, random),
        ),
        defaultRoute: entry(DEFAULT_ROUTE_NAME, undefined, backends, random),
      };
      for (const a of s.authorities ?? [s.name]) this.byAuthority.set(a.toLowerCase(), svc);
      return svc;
    });
  }

  /** The service claiming an authority (exact, then host without port), if any. */
  service(authority: string): ServiceEntry | undefined {
    const exact = this.byAuthority.get(authority);
    if (exact !== undefined) return exact;
    const colon = authority.lastIndexOf(":");
    if (colon > 0 && !authority.endsWith("]"))
      return this.byAuthority.get(authority.slice(0, colon));
    return undefined;
  }

  /** Routes a request; undefined when no service claims the authority. */
  route(
    authority: string,
    method: string,
    pathAndQuery: string,
    headers: IncomingHttpHeaders,
  ): RouteDecision | undefined {
    const service = this.service(authority);
    if (service === undefined) return undefined;
    const path = pathOf(pathAndQuery);
    let route = service.defaultRoute;
    for (const r of service.routes) {
      if (r.match.matches(method, path, headers)) {
        route = r;
        break;
      }
    }
    return { service, route, backend: route.split.pick() };
  }
}
