import type { IncomingMessage } from "node:http";

// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and must not be forwarded;
// `proxy-connection` is the non-standard variant some clients still send. `expect` is
// answered by this server (Node sends 100 Continue) and undici refuses to send it; `host`
// is set per upstream connection.
const NOT_FORWARDED = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
]);

/** Names listed in a `Connection` header are hop-by-hop too. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const tokens = new Set<string>();
  for (const part of Array.isArray(value) ? value : [value]) {
    for (const t of part.split(",")) {
      const name = t.trim().toLowerCase();
      if (name !== "") tokens.add(name);
    }
  }
  return tokens;
}

/**
 * The headers to send upstream for `req`, as a flat `[name, value, …]` list (duplicates and
 * order kept): hop-by-hop headers, `host` and `expect` removed, `x-forwarded-for`,
 * `x-forwarded-host` and `x-forwarded-proto` added.
 */
export function upstreamRequestHeaders(req: IncomingMessage): string[] {
  const listed = connectionTokens(req.headers.connection);
  const raw = req.rawHeaders;
  const out: string[] = [];
  let forwardedFor: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (NOT_FORWARDED.has(lower) || listed?.has(lower)) continue;
    if (lower === "host" || lower === "expect") continue;
    if (lower === "x-forwarded-for") {
      forwardedFor = forwardedFor === undefined ? raw[i + 1]! : `${forwardedFor}, ${raw[i + 1]}`;
      continue;
    }
    if (lower === "x-forwarded-host" || lower === "x-forwarded-proto") continue;
    out.push(name, raw[i + 1]!);
  }
  const client = req.socket.remoteAddress ?? "unknown";
  out.push("x-forwarded-for", forwardedFor === undefined ? client : `${forwardedFor}, ${client}`);
  if (req.headers.host !== undefined) out.push("x-forwarded-host", req.headers.host);
  out.push("x-forwarded-proto", "encrypted" in req.socket ? "https" : "http");
  return out;
}

/** The upstream response headers to send to the client: hop-by-hop headers removed. */
export function clientResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (NOT_FORWARDED.has(lower) || listed?.has(lower)) continue;
    out[name] = value;
  }
  return out;
}
