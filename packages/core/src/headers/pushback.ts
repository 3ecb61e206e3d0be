/**
 * Parses a `Retry-After` value: delay-seconds or an HTTP-date (relative to `nowEpochMs`).
 * @returns the delay in ms (>= 0), or undefined when absent or malformed.
 */
export function parseRetryAfter(value: unknown, nowEpochMs = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v !== "string") return undefined;
  const text = v.trim();
  if (text === "") return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // HTTP-dates always contain a letter (day and month names); bare numbers were handled above.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowEpochMs);
}

/**
 * Reads gRPC's `grpc-retry-pushback-ms` (A6): a delay in ms before the next attempt, or
 * `null` when the server says not to retry (a negative or malformed value); undefined when
 * absent.
 */
export function parseGrpcPushback(value: unknown): number | null | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^\d{1,10}$/.test(v.trim())) return null;
  return Number(v.trim());
}

/**
 * How long a response (headers, or gRPC trailers) asks its sender to stay away, in ms:
 * `grpc-retry-pushback-ms` when present and non-negative, else `Retry-After`. Undefined when
 * it asks nothing (or, for gRPC, says "do not retry" without a delay).
 */
export function pushbackMs(
  headers: Record<string, string | string[] | undefined> | null | undefined,
  nowEpochMs?: number,
): number | undefined {
  if (headers == null) return undefined;
  const grpc = headers["grpc-retry-pushback-ms"];
  if (grpc !== undefined) return parseGrpcPushback(grpc) ?? undefined;
  const after = headers["retry-after"];
  return after === undefined ? undefined : parseRetryAfter(after, nowEpochMs);
}
