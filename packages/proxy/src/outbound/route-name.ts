import type { RouteConfig } from "../config/schema.js";
import { routeMatchName } from "../http/route-match.js";

/** The name of a service's fallback route (requests no configured route matched). */
export const DEFAULT_ROUTE_NAME = "default";

/**
 * The metric/log names of a service's routes, in config order: `name` where given, else the
 * name derived from its match ({@link routeMatchName}, as authorization names its routes).
 * Two unnamed routes deriving the same name (the later one can only match what the earlier
 * did not, e.g. a header regex) are told apart by a `#<index>` suffix on the later one.
 */
export function routeNames(routes: readonly RouteConfig[]): string[] {
  const used = new Set<string>();
  for (const r of routes) if (r.name !== undefined) used.add(r.name);
  return routes.map((r, i) => {
    if (r.name !== undefined) return r.name;
    let name = routeMatchName(r.match);
    if (used.has(name)) name = `${name}#${i}`;
    used.add(name);
    return name;
  });
}
