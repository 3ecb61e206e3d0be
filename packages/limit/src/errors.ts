import { MeshError } from "@mesh/core";

/** The stable codes of this package's errors. */
export const limitErrorCodes = ["MESH_LIMIT_RATE_LIMITED", "MESH_LIMIT_QUEUE_FULL"] as const;

/** A code of {@link limitErrorCodes}. */
export type LimitErrorCode = (typeof limitErrorCodes)[number];

/**
 * An outbound request refused by a rate limit (`MESH_LIMIT_RATE_LIMITED`, or
 * `MESH_LIMIT_QUEUE_FULL` when queueing was allowed but the queue was full). Never
 * reached the network. `retryAfterMs` is when it would conform; `statusCode` is 429 so a
 * gateway can pass it on as-is.
 */
export class RateLimitedError extends MeshError<LimitErrorCode> {
  readonly statusCode = 429;
  /** Time until the request would conform to the limit, ms. */
  readonly retryAfterMs: number;
  /** Which limit refused it. */
  readonly limit: "total" | "identity" | "override";

  constructor(
    code: LimitErrorCode,
    retryAfterMs: number,
    limit: "total" | "identity" | "override",
  ) {
    super(
      code,
      code === "MESH_LIMIT_QUEUE_FULL"
        ? `rate limit queue full (${limit} limit; retry after ${Math.ceil(retryAfterMs)} ms)`
        : `rate limited (${limit} limit; retry after ${Math.ceil(retryAfterMs)} ms)`,
    );
    this.name = "RateLimitedError";
    this.retryAfterMs = retryAfterMs;
    this.limit = limit;
  }
}
