/**
 * Linkerd's `response_latency_ms` bucket bounds in milliseconds (`+Inf` is implied).
 * Also used for `tcp_connection_duration_ms`.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000,
  20000, 30000, 40000, 50000,
]);
