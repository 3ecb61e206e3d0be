import type { IncomingHttpHeaders } from "node:http";

/** Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "transfer-encoding",
  "upgrade",
  "expect",
  "http2-settings",
]);

/** Header carrying the proxy chain; the proxy appends itself and refuses loops. */
export const VIA = "via";

/** Names listed in a `Connection` header (also hop-by-hop). */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // The usual values name no other header: answer without splitting.
  if (typeof value === "string" && value.length <= 10) {
    const v = value.toLowerCase();
    if (v === "keep-alive" || v === "close") return undefined;
  }
  const text = Array.isArray(value) ? value.join(",") : value;
  const out = new Set<string>();
  for (const t of text.split(",")) {
    const name = t.trim().toLowerCase();
    if (name !== "" && name !== "close" && name !== "keep-alive") out.add(name);
  }
  return out.size === 0 ? undefined : out;
}

/** Result of preparing request headers for the upstream. */
export interface UpstreamHeaders {
  /** Flat `[name, value, name, value, …]` list for undici. */
  headers: string[];
  /** The request's authority (Host or :authority), lower-cased, or "" when absent. */
  authority: string;
  /** Whether the client announced it accepts trailers (`te: trailers`). */
  teTrailers: boolean;
}

/**
 * Builds the upstream request headers from the client's raw headers: drops hop-by-hop
 * and HTTP/2 pseudo headers, turns `:authority` into `Host`, keeps `te: trailers` (gRPC
 * needs it) and appends `via`.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  headers: IncomingHttpHeaders,
  viaEntry: string,
): UpstreamHeaders {
  const extra = connectionTokens(headers.connection);
  const out: string[] = [];
  let authority = "";
  let teTrailers = false;
  let via: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    const lower = name.toLowerCase();
    if (lower.charCodeAt(0) === 58 /* ':' */) {
      if (lower === ":authority") authority = value;
      continue;
    }
    if (lower === "host") {
      if (authority === "") authority = value;
      continue;
    }
    if (lower === "te") {
      if (/(?:^|,)\s*trailers\s*(?:[;,]|$)/i.test(value)) teTrailers = true;
      continue;
    }
    if (lower === VIA) {
      via = via === undefined ? value : `${via}, ${value}`;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || extra?.has(lower)) continue;
    out.push(name, value);
  }
  if (authority !== "") out.push("host", authority);
  if (teTrailers) out.push("te", "trailers");
  out.push(VIA, via === undefined ? viaEntry : `${via}, ${viaEntry}`);
  return { headers: out, authority: authority.toLowerCase(), teTrailers };
}

/** True when the `via` chain already names `pseudonym` (the request looped back to us). */
export function viaContains(value: string | string[] | undefined, pseudonym: string): boolean {
  if (value === undefined) return false;
  const text = Array.isArray(value) ? value.join(",") : value;
  // Every meshed request carries the peer proxy's `via`: skip the split when ours is absent.
  if (!text.includes(pseudonym)) return false;
  for (const entry of text.split(",")) {
    const parts = entry.trim().split(/\s+/);
    if (parts[1] === pseudonym) return true;
  }
  return false;
}

/** Connection-specific response headers that HTTP/2 forbids and HTTP/1.1 must not forward. */
const RESPONSE_DROP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/**
 * Copies upstream response headers (undici's lower-cased object) for the client, dropping
 * hop-by-hop ones. The returned object is safe to pass to `writeHead` on HTTP/1.1 and HTTP/2.
 */
export function downstreamResponseHeaders(
  headers: IncomingHttpHeaders,
): Record<string, string | string[]> {
  const extra = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (RESPONSE_DROP.has(name) || name.charCodeAt(0) === 58 || extra?.has(name)) continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** Copies trailers, dropping fields HTTP/2 forbids in trailers. */
export function downstreamTrailers(
  trailers: IncomingHttpHeaders,
): Record<string, string | string[]> | undefined {
  let out: Record<string, string | string[]> | undefined;
  for (const name in trailers) {
    if (RESPONSE_DROP.has(name) || name.charCodeAt(0) === 58) continue;
    const v = trailers[name];
    if (v === undefined) continue;
    out ??= {};
    out[name] = v;
  }
  return out;
}
