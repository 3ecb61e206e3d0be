import type { IncomingHttpHeaders } from "node:http";

/** What a route matches on; every given part must match. */
export interface RouteMatchConfig {
  /** Exact path (the query is ignored). */
  path?: string | undefined;
  /** Path prefix on whole segments: `/api` matches `/api` and `/api/x`, not `/apix`. */
  pathPrefix?: string | undefined;
  /** HTTP methods, any case; any method when absent. */
  methods?: readonly string[] | undefined;
  /** Request headers: an exact value, or `{ exact }` / `{ regex }` (whole value). */
  headers?:
    | Readonly<Record<string, string | { exact?: string | undefined; regex?: string | undefined }>>
    | undefined;
}

interface HeaderMatch {
  name: string;
  exact?: string;
  regex?: RegExp;
}

const SLASH = 47;

/**
 * One compiled route match, shared by outbound routing and inbound authorization so both
 * read a route the same way. Built once per config; {@link RouteMatch.matches} allocates
 * nothing.
 */
export class RouteMatch {
  readonly #path: string | undefined;
  /** Without trailing slashes; `undefined` for "/" (every path). */
  readonly #prefix: string | undefined;
  readonly #methods: ReadonlySet<string> | undefined;
  readonly #headers: readonly HeaderMatch[] | undefined;
  /**
   * The route's name derived from its match ({@link routeMatchName}): the outbound `route`
   * label of an unnamed route and the `route` of authorization decisions.
   */
  readonly label: string;

  constructor(config: RouteMatchConfig) {
    this.#path = config.path;
    const prefix =
      config.pathPrefix === undefined ? undefined : config.pathPrefix.replace(/\/+$/, "");
    this.#prefix = prefix === "" ? undefined : prefix;
    this.label = routeMatchName(config);
    if (config.methods !== undefined)
      this.#methods = new Set(config.methods.map((m) => m.toUpperCase()));
    if (config.headers !== undefined)
      this.#headers = Object.entries(config.headers).map(([name, v]) => {
        const h: HeaderMatch = { name: name.toLowerCase() };
        if (typeof v === "string") h.exact = v;
        else {
          if (v.exact !== undefined) h.exact = v.exact;
          if (v.regex !== undefined) h.regex = new RegExp(`^(?:${v.regex})$`);
        }
        return h;
      });
  }

  /**
   * Whether a request matches. `path` without its query (see {@link pathOf}); `method` as
   * received (Node gives it upper-case; others are upper-cased here).
   */
  matches(method: string | undefined, path: string, headers?: IncomingHttpHeaders): boolean {
    if (this.#path !== undefined && path !== this.#path) return false;
    const prefix = this.#prefix;
    if (prefix !== undefined) {
      if (!path.startsWith(prefix)) return false;
      if (path.length > prefix.length && path.charCodeAt(prefix.length) !== SLASH) return false;
    }
    const methods = this.#methods;
    if (methods !== undefined) {
      if (method === undefined) return false;
      if (!methods.has(method) && !methods.has(method.toUpperCase())) return false;
    }
    if (this.#headers !== undefined) {
      for (const h of this.#headers) {
        const raw = headers?.[h.name];
        const v = Array.isArray(raw) ? raw.join(", ") : raw;
        if (v === undefined) return false;
        if (h.exact !== undefined && v !== h.exact) return false;
        if (h.regex !== undefined && !h.regex.test(v)) return false;
      }
    }
    return true;
  }
}

/**
 * A route's name derived from what it matches, so it stays the same when routes are added or
 * reordered: methods (upper-cased, in config order), `exact:<path>`, `prefix:<pathPrefix>`,
 * then each header as `header:<name>=<value>` or `header:<name>~<regex>`, space-separated;
 * `any` for a match with none of them: `GET,POST prefix:/api header:x-canary=1`.
 *
 * A prefix is named without its trailing slashes (`/api/` is `prefix:/api`), because it
 * matches the same requests as `/api` (whole segments); `/` stays `prefix:/`. Exact paths
 * are named as written: `/api/` and `/api` match different requests.
 */
export function routeMatchName(config: RouteMatchConfig): string {
  const parts: string[] = [];
  if (config.methods !== undefined && config.methods.length > 0)
    parts.push(config.methods.map((m) => m.toUpperCase()).join(","));
  if (config.path !== undefined) parts.push(`exact:${config.path}`);
  if (config.pathPrefix !== undefined)
    parts.push(`prefix:${config.pathPrefix.replace(/\/+$/, "") || "/"}`);
  if (config.headers !== undefined) {
    for (const [name, v] of Object.entries(config.headers)) {
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

/** The path of a request target, without its query. */
export function pathOf(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf("?");
  return q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
}
