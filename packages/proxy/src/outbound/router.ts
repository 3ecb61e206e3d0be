import type { IncomingHttpHeaders } from "node:http";
import { WeightedChoice } from "@mesh/balancer";
import type {
  BackendConfig,
  OutboundConfig,
  RouteConfig,
  ServiceConfig,
} from "../config/schema.js";
import { DEFAULT_ROUTE_NAME, routeNames } from "./route-name.js";

/** A compiled route match. */
interface CompiledMatch {
  path?: string;
  pathPrefix?: string;
  methods?: Set<string>;
  headers?: { name: string; exact?: string; regex?: RegExp }[];
}

/** A route of a service, ready to match. */
export interface RouteEntry {
  /** Route label: `name`, or one derived from the match (see `routeNames`), or `default`. */
  name: string;
  /** The route config (undefined for the service's default route). */
  config: RouteConfig | undefined;
  match: CompiledMatch;
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

function compileMatch(m: RouteConfig["match"]): CompiledMatch {
  const out: CompiledMatch = {};
  if (m.path !== undefined) out.path = m.path;
  if (m.pathPrefix !== undefined)
    out.pathPrefix = m.pathPrefix.length > 1 ? m.pathPrefix.replace(/\/$/, "") : m.pathPrefix;
  if (m.methods !== undefined) out.methods = new Set(m.methods.map((x) => x.toUpperCase()));
  if (m.headers !== undefined) {
    out.headers = Object.entries(m.headers).map(([name, v]) => {
      const h: { name: string; exact?: string; regex?: RegExp } = { name: name.toLowerCase() };
      if (typeof v === "string") h.exact = v;
      else {
        if (v.exact !== undefined) h.exact = v.exact;
        if (v.regex !== undefined) h.regex = new RegExp(`^(?:${v.regex})$`);
      }
      return h;
    });
  }
  return out;
}

function matches(
  m: CompiledMatch,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
): boolean {
  if (m.path !== undefined && path !== m.path) return false;
  if (m.pathPrefix !== undefined && m.pathPrefix !== "/") {
    if (!path.startsWith(m.pathPrefix)) return false;
    const next = path.charCodeAt(m.pathPrefix.length);
    if (!Number.isNaN(next) && next !== 47 /* '/' */) return false;
  }
  if (m.methods !== undefined && !m.methods.has(method)) return false;
  if (m.headers !== undefined) {
    for (const h of m.headers) {
      const raw = headers[h.name];
      const v = Array.isArray(raw) ? raw.join(", ") : raw;
      if (v === undefined) return false;
      if (h.exact !== undefined && v !== h.exact) return false;
      if (h.regex !== undefined && !h.regex.test(v)) return false;
    }
  }
  return true;
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
    match: compileMatch(config?.match ?? {}),
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
    const q = pathAndQuery.indexOf("?");
    const path = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
    let route = service.defaultRoute;
    for (const r of service.routes) {
      if (matches(r.match, method, path, headers)) {
        route = r;
        break;
      }
    }
    return { service, route, backend: route.split.pick() };
  }
}
