/** Whether a response or connection counts as a success or a failure. */
export type Classification = "success" | "failure";

/** Absent gRPC status (plain HTTP, or gRPC without a status yet). */
export const NO_GRPC_STATUS = -1;

/**
 * Linkerd's rule: a gRPC status, when present, decides (0 = OK is a success, anything
 * else a failure); otherwise HTTP 5xx is a failure, and no status at all (the stream
 * failed before headers, `status` 0) is a failure.
 */
export function classifyResponse(status: number, grpcStatus: number): Classification {
  if (grpcStatus >= 0) return grpcStatus === 0 ? "success" : "failure";
  return status >= 500 || status < 100 ? "failure" : "success";
}

/** Header values as node:http, node:http2 and undici's controller API present them. */
export type HeaderBag =
  | Readonly<Record<string, string | string[] | number | undefined>>
  | null
  | undefined;

/**
 * Reads `grpc-status` from response headers (trailers-only responses) or trailers.
 * Returns {@link NO_GRPC_STATUS} when absent or not a non-negative integer.
 */
export function grpcStatusOf(headers: HeaderBag): number {
  return headers == null ? NO_GRPC_STATUS : grpcStatusValue(headers["grpc-status"]);
}

/** Parses one `grpc-status` header value (as `getHeader` returns it); -1 when absent or invalid. */
export function grpcStatusValue(value: string | string[] | number | undefined): number {
  let v = value;
  if (v === undefined) return NO_GRPC_STATUS;
  if (Array.isArray(v)) v = v[0];
  const n = typeof v === "number" ? v : Number.parseInt(v as string, 10);
  return Number.isInteger(n) && n >= 0 ? n : NO_GRPC_STATUS;
}
