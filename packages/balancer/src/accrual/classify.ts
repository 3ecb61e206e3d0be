/**
 * gRPC status codes that count as endpoint failures: DEADLINE_EXCEEDED (4),
 * PERMISSION_DENIED (7), INTERNAL (13), UNAVAILABLE (14), DATA_LOSS (15).
 */
export const FAILURE_GRPC_CODES: ReadonlySet<number> = new Set([4, 7, 13, 14, 15]);

/** Errors caused by the caller or the request itself rather than the endpoint. */
const NEUTRAL_ERROR_CODES = new Set([
  "UND_ERR_ABORTED",
  "ABORT_ERR",
  "UND_ERR_INVALID_ARG",
  "UND_ERR_NOT_SUPPORTED",
  "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_RES_EXCEEDED_MAX_SIZE",
  "UND_ERR_REQ_RETRY",
  "MESH_BALANCER_CLOSED",
]);

/** What a finished exchange says about the endpoint. */
export type Outcome = "success" | "failure" | "neutral";

/** True for a response status that counts as an endpoint failure (5xx). */
export function isFailureStatus(status: number): boolean {
  return status >= 500;
}

/**
 * Reads `grpc-status` from a header or trailer object (undici's parsed form) and says whether
 * it is a failure code. Absent or unparsable is not a failure.
 */
export function isFailureGrpc(
  headers: Record<string, string | string[] | undefined> | null | undefined,
): boolean {
  if (!headers) return false;
  const raw = headers["grpc-status"];
  if (raw === undefined) return false;
  const code = Number(Array.isArray(raw) ? raw[0] : raw);
  return FAILURE_GRPC_CODES.has(code);
}

/**
 * Classifies a transport error: aborts and request-side errors are `neutral` (they say nothing
 * about the endpoint); connection refusals, resets, TLS and timeout errors are `failure`.
 */
export function classifyError(error: unknown): Outcome {
  if (error && typeof error === "object") {
    const e = error as { code?: unknown; name?: unknown };
    if (typeof e.code === "string" && NEUTRAL_ERROR_CODES.has(e.code)) return "neutral";
    if (e.name === "AbortError" || e.name === "TimeoutError") return "neutral";
  }
  return "failure";
}
