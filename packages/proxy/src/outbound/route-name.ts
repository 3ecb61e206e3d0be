import type { RouteConfig } from "../config/schema.js";

/** The name of a service's fallback route (requests no configured route matched). */
export const DEFAULT_ROUTE_NAME = "default";

/**
 * The `route` label of a route without a `name`: derived from what it matches, so it stays
 * the same when routes are added or reordered (an index would silently move a dashboard's
 * series to another route). Paths read as in `RouteMatch.label` (`exact:/x`, `prefix:/api`),
 * with methods and headers added:
 * `GET,POST prefix:/api header:x-canary=1`; a route matching everything is `any`.
 */
export function derivedRouteName(match: RouteConfig["match"]): string {
  const parts: string[] = [];
  if (match.methods !== undefined && match.methods.length > 0)
    parts.push(match.methods.map((m) => m.toUpperCase()).join(","));
  if (match.path !== undefined) parts.push(`exact:${match.path}`);
  if (match.pathPrefix !== undefined) parts.push(`prefix:${match.pathPrefix}`);
  if (match.headers !== undefined) {
    for (const [name, v] of Object.entries(match.headers)) {
      const n = name.toLowerCase();
      if (typeof v === "string") parts.push(`header:${n}=${v}`);
      else {
        if (v.exact !== undefined) parts.push(`header:${n}=${v.exact}`);
        if (v.regex !== undefined) parts.push(`header:${n}~${v.regex}`);
        if (v.exact === undefined && v.regex === undefined) parts.push(`header:${n}`);
      }
    }
  }
  return parts.length === 0 ? "any" : parts.join(" ");
}

/**
 * The metric/log names of a service's routes, in config order: `name` where given, else
 * {@link derivedRouteName}. Two unnamed routes deriving the same name (the later one can
 * only match what the earlier did not, e.g. a header regex) are told apart by a `#<index>`
 * suffix on the later one.
 */
export function routeNames(routes: readonly RouteConfig[]): string[] {
  const used = new Set<string>();
  for (const r of routes) if (r.name !== undefined) used.add(r.name);
  return routes.map((r, i) => {
    if (r.name !== undefined) return r.name;
    let name = derivedRouteName(r.match);
    if (used.has(name)) name = `${name}#${i}`;
    used.add(name);
    return name;
  });
}
