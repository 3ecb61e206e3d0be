import type { IncomingHeaders } from "../types.js";

/**
 * Encodes parsed headers as the flat raw list legacy handlers expect:
 * `[name, value, name, value, ...]` as latin1 Buffers. A repeated header (an array value)
 * becomes one pair per value, so `set-cookie` and friends keep their separate values.
 */
export function toRawHeaders(headers: IncomingHeaders | null | undefined): Buffer[] {
  const raw: Buffer[] = [];
  if (headers == null) return raw;
  for (const name in headers) {
    const value = headers[name];
    if (value == null) continue;
    if (Array.isArray(value)) {
      for (const v of value)
        raw.push(Buffer.from(name, "latin1"), Buffer.from(String(v), "latin1"));
    } else {
      raw.push(Buffer.from(name, "latin1"), Buffer.from(String(value), "latin1"));
    }
  }
  return raw;
}
