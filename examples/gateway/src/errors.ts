/** The response the gateway sends when the upstream exchange failed before any byte came back. */
export interface ErrorResponse {
  status: 400 | 502 | 503 | 504;
  /** Short machine-readable reason. */
  error: "bad_request" | "bad_gateway" | "service_unavailable" | "gateway_timeout";
  /** One sentence for humans. */
  message: string;
  /** The `code` of the underlying error, when it has one (e.g. `MESH_RETRY_REQUEST_TIMEOUT`). */
  code: string | undefined;
}

const TIMEOUT_CODES = new Set([
  "MESH_RETRY_REQUEST_TIMEOUT",
  "MESH_RETRY_PER_TRY_TIMEOUT",
  "MESH_RETRY_IDLE_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CONNECT_TIMEOUT",
  "ETIMEDOUT",
]);

const UNAVAILABLE_CODES = new Set([
  "MESH_BALANCER_NO_ENDPOINTS_READY",
  "MESH_BALANCER_CLOSED",
  "MESH_RETRY_CIRCUIT_OPEN",
]);

// The client's own request was broken (body shorter/longer than its Content-Length, invalid
// header value): nothing the upstream did.
const CLIENT_CODES = new Set([
  "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_INVALID_ARG",
  "UND_ERR_NOT_SUPPORTED",
]);

/**
 * Maps an error from the upstream dispatcher to the status the client gets: 504 for a
 * deadline, 503 when no upstream can take the request, 400 when the client's request could
 * not be sent as it was, and 502 for everything else (refused, reset, malformed response).
 */
export function errorResponse(err: unknown): ErrorResponse {
  const code = codeOf(err);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return {
      status: 504,
      error: "gateway_timeout",
      message: "the upstream did not answer in time",
      code,
    };
  }
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return {
      status: 503,
      error: "service_unavailable",
      message: "no upstream is available to take the request",
      code,
    };
  }
  if (code !== undefined && CLIENT_CODES.has(code)) {
    return {
      status: 400,
      error: "bad_request",
      message: "the request could not be forwarded as sent",
      code,
    };
  }
  return {
    status: 502,
    error: "bad_gateway",
    message: "the upstream failed to answer",
    code,
  };
}

/** The first string `code` on the error or its `cause` chain (a few levels deep). */
function codeOf(err: unknown): string | undefined {
  let e = err;
  for (let depth = 0; depth < 4 && typeof e === "object" && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
