import { GrpcStatus } from "../grpc/status.js";

/**
 * What one exchange says under a rule: `failure` is what the rule counts (an endpoint
 * failure, a retryable failure, an unsuccessful response), `neutral` says nothing either way
 * (a caller's abort tells nothing about the endpoint; an error not worth retrying).
 */
export type Outcome = "success" | "failure" | "neutral";

/** How to build an {@link OutcomeRule}. */
export interface OutcomeRuleSpec {
  /** The rule's name, for messages and docs: `endpoint-health`, `retryable`, `response-success`. */
  readonly name: string;
  /** HTTP statuses that fail when no gRPC status is present: a list or a predicate (0..999). */
  readonly http: Iterable<number> | ((status: number) => boolean);
  /** gRPC statuses that fail: a list, or `"not-ok"` for every status but OK. */
  readonly grpc: Iterable<number> | "not-ok";
  /**
   * Error codes (`err.code`, or its `cause`'s) that fail, or `"all"`: every error that is not
   * neutral. Default `"all"`.
   */
  readonly failingErrors?: Iterable<string> | "all";
  /** Error codes that are neutral; also `AbortError`/`TimeoutError` names when `abortsNeutral`. */
  readonly neutralErrors?: Iterable<string>;
  /** Whether errors named `AbortError` or `TimeoutError` (the caller gave up) are neutral. */
  readonly abortsNeutral?: boolean;
}

const CODES = 1000;

/**
 * One response classifier, parameterised by a rule. A response's gRPC status, when present
 * (headers of a trailers-only response, or trailers), decides; otherwise its HTTP status does,
 * and 0 (no response at all) is looked up like any status. Lookups are table reads: nothing
 * is allocated per call.
 */
export class OutcomeRule {
  readonly name: string;
  readonly #http = new Uint8Array(CODES);
  readonly #grpc = new Uint8Array(CODES);
  readonly #failing: ReadonlySet<string> | undefined;
  readonly #neutral: ReadonlySet<string>;
  readonly #abortsNeutral: boolean;
  /** Whether no gRPC status fails under this rule (then trailers need not be awaited). */
  readonly grpcNeverFails: boolean;

  constructor(spec: OutcomeRuleSpec) {
    this.name = spec.name;
    const http = spec.http;
    if (typeof http === "function") {
      for (let s = 0; s < CODES; s++) if (http(s)) this.#http[s] = 1;
    } else for (const s of http) if (s >= 0 && s < CODES) this.#http[s] = 1;
    if (spec.grpc === "not-ok") this.#grpc.fill(1, 1);
    else for (const c of spec.grpc) if (c >= 0 && c < CODES) this.#grpc[c] = 1;
    this.grpcNeverFails = !this.#grpc.includes(1);
    const failing = spec.failingErrors ?? "all";
    this.#failing = failing === "all" ? undefined : new Set(failing);
    this.#neutral = new Set(spec.neutralErrors ?? []);
    this.#abortsNeutral = spec.abortsNeutral ?? false;
  }

  /** Classifies a response by HTTP status and gRPC status (`undefined` when absent). */
  response(status: number, grpcStatus: number | undefined): "success" | "failure" {
    if (grpcStatus !== undefined) return this.grpcFails(grpcStatus) ? "failure" : "success";
    return this.httpFails(status) ? "failure" : "success";
  }

  /** Whether HTTP `status` fails under this rule (statuses outside 0..999 fail). */
  httpFails(status: number): boolean {
    return status >= 0 && status < CODES ? this.#http[status] === 1 : true;
  }

  /** Whether gRPC `code` fails under this rule. */
  grpcFails(code: number): boolean {
    return code >= 0 && code < CODES ? this.#grpc[code] === 1 : true;
  }

  /** Classifies an error raised instead of a response. */
  error(error: unknown): Outcome {
    if (error !== null && typeof error === "object") {
      const e = error as { code?: unknown; name?: unknown };
      if (typeof e.code === "string" && this.#neutral.has(e.code)) return "neutral";
      if (this.#abortsNeutral && (e.name === "AbortError" || e.name === "TimeoutError")) {
        return "neutral";
      }
    }
    if (this.#failing === undefined) return "failure";
    return this.failingErrorCode(error) === undefined ? "neutral" : "failure";
  }

  /**
   * The code that makes `error` fail under a rule with listed failing codes: its own `code`,
   * or its `cause`'s (undici wraps connection errors one level deep); undefined otherwise.
   */
  failingErrorCode(error: unknown): string | undefined {
    if (error === null || typeof error !== "object") return undefined;
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && (this.#failing === undefined || this.#failing.has(code))) {
      return code;
    }
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (cause !== null && typeof cause === "object" && typeof cause.code === "string") {
      if (this.#failing === undefined || this.#failing.has(cause.code)) return cause.code;
    }
    return undefined;
  }
}

const { DEADLINE_EXCEEDED, PERMISSION_DENIED, INTERNAL, UNAVAILABLE, DATA_LOSS } = GrpcStatus;
const { CANCELLED, RESOURCE_EXHAUSTED } = GrpcStatus;

/** gRPC statuses that count against an endpoint's health. */
export const ENDPOINT_FAILURE_GRPC_STATUSES: readonly number[] = [
  DEADLINE_EXCEEDED,
  PERMISSION_DENIED,
  INTERNAL,
  UNAVAILABLE,
  DATA_LOSS,
];

/** gRPC statuses retried by default (Linkerd's set). */
export const RETRYABLE_GRPC_STATUSES: readonly number[] = [
  CANCELLED,
  DEADLINE_EXCEEDED,
  INTERNAL,
  RESOURCE_EXHAUSTED,
  UNAVAILABLE,
];

/** Connection failures before any response byte, retried by default. */
export const RETRYABLE_ERROR_CODES: readonly string[] = [
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
];

/** Errors caused by the caller or the request itself rather than by the endpoint. */
export const CALLER_ERROR_CODES: readonly string[] = [
  "UND_ERR_ABORTED",
  "ABORT_ERR",
  "UND_ERR_INVALID_ARG",
  "UND_ERR_NOT_SUPPORTED",
  "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_RES_EXCEEDED_MAX_SIZE",
  "UND_ERR_REQ_RETRY",
  "MESH_BALANCER_CLOSED",
];

const is5xx = (status: number): boolean => status >= 500;

/**
 * Endpoint health, for failure accrual and the balancer's failure rate: 5xx, and gRPC
 * DEADLINE_EXCEEDED, PERMISSION_DENIED, INTERNAL, UNAVAILABLE, DATA_LOSS fail; transport
 * errors fail unless the caller caused them (aborts, bad requests: neutral).
 */
export const endpointHealth: OutcomeRule = new OutcomeRule({
  name: "endpoint-health",
  http: is5xx,
  grpc: ENDPOINT_FAILURE_GRPC_STATUSES,
  neutralErrors: CALLER_ERROR_CODES,
  abortsNeutral: true,
});

/**
 * Retryable, Linkerd's defaults: 5xx, gRPC CANCELLED, DEADLINE_EXCEEDED, INTERNAL,
 * RESOURCE_EXHAUSTED, UNAVAILABLE, and connection failures before any response byte
 * ({@link RETRYABLE_ERROR_CODES}); other errors are neutral (not retried).
 */
export const retryable: OutcomeRule = new OutcomeRule({
  name: "retryable",
  http: is5xx,
  grpc: RETRYABLE_GRPC_STATUSES,
  failingErrors: RETRYABLE_ERROR_CODES,
});

/**
 * Response success, Linkerd's `classification` label: a gRPC status decides when present
 * (OK succeeds, any other fails); otherwise 5xx fails, and so does no status at all (0: the
 * stream failed before its headers). Every error fails.
 */
export const responseSuccess: OutcomeRule = new OutcomeRule({
  name: "response-success",
  http: (status) => status >= 500 || status < 100,
  grpc: "not-ok",
});
