import { MeshError } from "@mesh/core";
import type { RetryErrorCode } from "../errors.js";

/** Why a timeout fired. */
export type TimeoutKind = "request" | "per-try" | "idle";

/** Base class of this package's timeout errors; branch on `code` or `kind`. */
export abstract class MeshTimeoutError extends MeshError<RetryErrorCode> {
  abstract readonly kind: TimeoutKind;
  /** The timeout that elapsed, in ms. */
  readonly timeoutMs: number;

  constructor(code: RetryErrorCode, message: string, timeoutMs: number) {
    super(code, message);
    this.timeoutMs = timeoutMs;
  }
}

/** The total request deadline (across all attempts) elapsed. Never retried. */
export class RequestTimeoutError extends MeshTimeoutError {
  override readonly name = "RequestTimeoutError";
  declare readonly code: "MESH_RETRY_REQUEST_TIMEOUT";
  readonly kind = "request";
  constructor(timeoutMs: number) {
    super("MESH_RETRY_REQUEST_TIMEOUT", `request timed out after ${timeoutMs} ms`, timeoutMs);
  }
}

/** One attempt got no response within the per-try timeout. Retryable when so configured. */
export class PerTryTimeoutError extends MeshTimeoutError {
  override readonly name = "PerTryTimeoutError";
  declare readonly code: "MESH_RETRY_PER_TRY_TIMEOUT";
  readonly kind = "per-try";
  constructor(timeoutMs: number) {
    super(
      "MESH_RETRY_PER_TRY_TIMEOUT",
      `attempt got no response within ${timeoutMs} ms`,
      timeoutMs,
    );
  }
}

/** No response body bytes arrived for the idle timeout. Never retried. */
export class IdleTimeoutError extends MeshTimeoutError {
  override readonly name = "IdleTimeoutError";
  declare readonly code: "MESH_RETRY_IDLE_TIMEOUT";
  readonly kind = "idle";
  constructor(timeoutMs: number) {
    super("MESH_RETRY_IDLE_TIMEOUT", `response was idle for ${timeoutMs} ms`, timeoutMs);
  }
}
