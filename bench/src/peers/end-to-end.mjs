/**
 * The one hop-by-hop header filter of the Node pass-through peers (undici-stream.mjs,
 * proxyless.mjs): what a proxy must not forward between its two HTTP/1.1 connections.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
]);

/** Copies end-to-end headers (drops hop-by-hop ones and undefined values). */
export function endToEnd(headers) {
  const out = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}
