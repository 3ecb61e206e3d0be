/** The request header that marks one request retryable (`true`) or not (`false`). */
export const RETRYABLE_HEADER = "mesh-retryable";

type Headers = unknown;

/**
 * Finds `name` (lowercase) in request headers in any form undici accepts (object, flat array,
 * iterable of pairs) and returns its value plus the headers without it. The headers are only
 * copied when the header is present.
 */
export function takeHeader(
  headers: Headers,
  name: string,
): { value: string | undefined; headers: Headers } {
  if (headers == null || typeof headers !== "object") return { value: undefined, headers };
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (sameName(headers[i], name)) {
        const copy = headers.slice();
        copy.splice(i, 2);
        return { value: String(headers[i + 1]), headers: copy };
      }
    }
    return { value: undefined, headers };
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    let value: string | undefined;
    const rest: [string, string][] = [];
    for (const pair of headers as Iterable<[string, string]>) {
      if (sameName(pair[0], name)) value = String(pair[1]);
      else rest.push(pair);
    }
    return value === undefined ? { value, headers } : { value, headers: rest };
  }
  const record = headers as Record<string, unknown>;
  for (const key in record) {
    if (key.length === name.length && key.toLowerCase() === name) {
      const { [key]: found, ...rest } = record;
      return { value: found === undefined ? undefined : String(found), headers: rest };
    }
  }
  return { value: undefined, headers };
}

/**
 * The value of `name` (lowercase) in request headers in any form undici accepts, without
 * copying them; the first one when repeated.
 */
export function findHeader(headers: Headers, name: string): string | undefined {
  if (headers == null || typeof headers !== "object") return undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (Array.isArray(headers[i])) {
        const pair = headers[i] as unknown[];
        if (sameName(pair[0], name)) return String(pair[1]);
        i--; // [[k, v], …]: one entry per pair
      } else if (sameName(headers[i], name)) return String(headers[i + 1]);
    }
    return undefined;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    for (const pair of headers as Iterable<[string, string]>) {
      if (sameName(pair[0], name)) return String(pair[1]);
    }
    return undefined;
  }
  const record = headers as Record<string, unknown>;
  for (const key in record) {
    if (key.length === name.length && key.toLowerCase() === name) {
      const value = record[key];
      return value === undefined ? undefined : String(Array.isArray(value) ? value[0] : value);
    }
  }
  return undefined;
}

function sameName(key: unknown, name: string): boolean {
  if (typeof key === "string") return key.length === name.length && key.toLowerCase() === name;
  if (Buffer.isBuffer(key))
    return key.length === name.length && key.toString("latin1").toLowerCase() === name;
  return false;
}
