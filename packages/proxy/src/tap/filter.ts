import type { TapEvent } from "./event.js";

/** What a tap stream shows: every field optional, all given ones must match. */
export interface TapFilter {
  /** `inbound` or `outbound`. */
  direction?: "inbound" | "outbound";
  /** Exact authority (case-insensitive); `books` also matches `books:8080`. */
  authority?: string;
  /** Path prefix (`/api` matches `/api` and `/api/x?y`). */
  path?: string;
  /** HTTP method, case-insensitive. */
  method?: string;
  /** Route name, exact. */
  route?: string;
  /** Status class `2xx`..`5xx`, an exact status (`503`), or `error` (the proxy failed or reset it). */
  status?: string;
  /** SPIFFE ID of the client or the server, exact. */
  identity?: string;
  /** Share of matching requests shown, 0 < sample ≤ 1 (default 1). */
  sample?: number;
}

/** The query parameters of `GET /tap` (and the `mesh-proxy tap` flags of the same names). */
export const TAP_FILTER_PARAMS = [
  "direction",
  "authority",
  "path",
  "method",
  "route",
  "status",
  "identity",
  "sample",
] as const;

const STATUS = /^(?:[1-5]xx|[1-5]\d\d|error)$/;

/**
 * Reads a tap filter from query parameters. Throws a `TypeError`/`RangeError` naming the
 * parameter and the bad value (`status: expected 2xx..5xx, a status code or error, got "9xx"`).
 */
export function parseTapFilter(params: URLSearchParams): TapFilter {
  const out: TapFilter = {};
  for (const key of params.keys()) {
    if (!(TAP_FILTER_PARAMS as readonly string[]).includes(key)) {
      throw new TypeError(
        `${key}: expected one of ${TAP_FILTER_PARAMS.join(", ")}, got an unknown parameter`,
      );
    }
  }
  const get = (name: string) => {
    const v = params.get(name);
    return v === null || v === "" ? undefined : v;
  };
  const direction = get("direction");
  if (direction !== undefined) {
    if (direction !== "inbound" && direction !== "outbound")
      throw new TypeError(
        `direction: expected inbound or outbound, got ${JSON.stringify(direction)}`,
      );
    out.direction = direction;
  }
  const authority = get("authority");
  if (authority !== undefined) out.authority = authority.toLowerCase();
  const path = get("path");
  if (path !== undefined) {
    if (!path.startsWith("/"))
      throw new TypeError(
        `path: expected a path prefix starting with /, got ${JSON.stringify(path)}`,
      );
    out.path = path;
  }
  const method = get("method");
  if (method !== undefined) out.method = method.toUpperCase();
  const route = get("route");
  if (route !== undefined) out.route = route;
  const status = get("status");
  if (status !== undefined) {
    const s = status.toLowerCase();
    if (!STATUS.test(s))
      throw new TypeError(
        `status: expected 1xx..5xx, a status code or error, got ${JSON.stringify(status)}`,
      );
    out.status = s;
  }
  const identity = get("identity");
  if (identity !== undefined) out.identity = identity;
  const sample = get("sample");
  if (sample !== undefined) {
    const n = Number(sample);
    if (!(n > 0 && n <= 1))
      throw new RangeError(`sample: expected a number in (0, 1], got ${JSON.stringify(sample)}`);
    out.sample = n;
  }
  return out;
}

/** The query string of a filter (what `mesh-proxy tap` sends). */
export function tapFilterQuery(filter: TapFilter): string {
  const q = new URLSearchParams();
  for (const key of TAP_FILTER_PARAMS) {
    const v = filter[key];
    if (v !== undefined) q.set(key, String(v));
  }
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

function statusMatches(want: string, e: TapEvent): boolean {
  if (want === "error") return e.error !== undefined || e.status === 0;
  if (want.endsWith("xx")) return Math.floor(e.status / 100) === Number(want[0]);
  return e.status === Number(want);
}

function authorityMatches(want: string, got: string): boolean {
  if (got === want) return true;
  // `books` matches `books:8080`: the app may or may not name the port.
  return got.startsWith(want) && got.charCodeAt(want.length) === 58 /* ':' */;
}

/** Whether an event passes a filter (sampling aside). */
export function tapMatches(f: TapFilter, e: TapEvent): boolean {
  if (f.direction !== undefined && e.direction !== f.direction) return false;
  if (f.authority !== undefined && !authorityMatches(f.authority, e.authority)) return false;
  if (f.path !== undefined && !e.path.startsWith(f.path)) return false;
  if (f.method !== undefined && e.method !== f.method) return false;
  if (f.route !== undefined && e.route !== f.route) return false;
  if (f.status !== undefined && !statusMatches(f.status, e)) return false;
  if (f.identity !== undefined && e.clientId !== f.identity && e.serverId !== f.identity)
    return false;
  return true;
}
