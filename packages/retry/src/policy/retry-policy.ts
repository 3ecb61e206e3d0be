import {
  bool,
  grpcStatusNames,
  integerIn,
  nonEmptyString,
  numberIn,
  type OptionNames,
  OutcomeRule,
  optionsObject,
  RETRYABLE_ERROR_CODES,
  RETRYABLE_GRPC_STATUSES,
  typeError,
} from "@mesh/core";
import { Backoff, type BackoffOptions } from "../backoff/backoff.js";
import { RetryBudget, type RetryBudgetOptions } from "../budget/retry-budget.js";
import { budgetExhaustedChannel, limitExceededChannel } from "../events.js";
import { GrpcStatusSet } from "./grpc.js";
import { HttpStatusSet } from "./status-set.js";

/** Options shared by the `retry()` interceptor and `withRetry()`. */
export interface RetryPolicyOptions {
  /** Name carried by events. Default: the budget's name. */
  name?: string;
  /** Most retries per request (not counting the original), 0..100. Default 1, as Linkerd. */
  limit?: number;
  /** HTTP statuses to retry, Linkerd syntax (`5xx`, `gateway-error`, `500-504`, `503`). Default `"5xx"`. */
  http?: string | readonly string[];
  /**
   * gRPC statuses to retry, read from headers (trailers-only responses) or trailers.
   * Default `cancelled, deadline-exceeded, internal, resource-exhausted, unavailable`; `[]` for none.
   * Given explicitly, they also retry gRPC calls (POSTs) that are not otherwise retryable:
   * listing them says the service's calls are safe to retry on them (gRPC's A6 policy).
   */
  grpc?: string | readonly (string | number)[];
  /** Error codes of connection failures to retry when no response byte arrived. */
  errorCodes?: readonly string[];
  /** Methods retried without being marked retryable. Default GET, HEAD, OPTIONS, TRACE, PUT, DELETE, QUERY. */
  methods?: readonly string[];
  /** Retry every method on this route (the route is marked retryable). Default false. */
  retryNonIdempotent?: boolean;
  /** Per-attempt timeout in ms until the response is committed to the caller. Default none. */
  perTryTimeout?: number;
  /** Retry an attempt that hit the per-try timeout, as Linkerd 2.16+. Default true. */
  retryOnPerTryTimeout?: boolean;
  /** Largest request body kept for replay, in bytes. Larger bodies are sent once, never retried. Default 64 KiB. */
  maxReplayBytes?: number;
  /** Exponential backoff with full jitter. Default 25 ms → 250 ms. */
  backoff?: BackoffOptions;
  /**
   * Longest `Retry-After` (seconds or an HTTP-date) or `grpc-retry-pushback-ms` honoured, in
   * ms: it is a minimum wait before the retry (the backoff applies when longer), and a
   * retryable response asking for a longer pause is returned to the caller instead. `false`
   * ignores them. Default 10000.
   */
  retryAfterMax?: number | false;
  /**
   * The budget retries draw on: a shared {@link RetryBudget}, options for a new one, or
   * `false` to rely on `limit` alone (not recommended). Default: a new budget with defaults.
   */
  budget?: RetryBudget | RetryBudgetOptions | false;
}

/** Option names of {@link RetryPolicyOptions}, with hints for names other retry libraries use. */
export const retryPolicyOptionNames: OptionNames = {
  known: [
    "name",
    "limit",
    "http",
    "grpc",
    "errorCodes",
    "methods",
    "retryNonIdempotent",
    "perTryTimeout",
    "retryOnPerTryTimeout",
    "maxReplayBytes",
    "backoff",
    "retryAfterMax",
    "budget",
  ],
  hints: {
    retryOn: "http",
    statusCodes: "http",
    statuses: "http",
    status: "http",
    retryOnStatus: "http",
    grpcStatuses: "grpc",
    grpcCodes: "grpc",
    retries: "limit",
    maxRetries: "limit",
    maxAttempts: "limit",
    attempts: "limit",
    errors: "errorCodes",
    retryNonIdempotentMethods: "retryNonIdempotent",
    nonIdempotent: "retryNonIdempotent",
    idempotent: "retryNonIdempotent",
    timeout: "perTryTimeout",
    perTry: "perTryTimeout",
    maxBodyBytes: "maxReplayBytes",
    minTimeout: "backoff.base",
    minDelay: "backoff.base",
    baseDelay: "backoff.base",
    maxTimeout: "backoff.max",
    maxDelay: "backoff.max",
    retryAfter: "retryAfterMax",
    retryBudget: "budget",
  },
};

/** Connection failures before any response byte, retried by default (`@mesh/core`'s list). */
export const defaultErrorCodes: readonly string[] = RETRYABLE_ERROR_CODES;

/** Idempotent methods (RFC 9110 §9.2.2, plus QUERY). */
export const defaultRetryMethods: readonly string[] = [
  "GET",
  "HEAD",
  "OPTIONS",
  "TRACE",
  "PUT",
  "DELETE",
  "QUERY",
];

const defaultGrpc: readonly number[] = RETRYABLE_GRPC_STATUSES;

/**
 * A validated retry policy: what to retry, how often, how long to wait, and the budget.
 * Build one and share it across interceptors and `withRetry()` calls, or pass plain options.
 */
export class RetryPolicy {
  readonly name: string;
  readonly limit: number;
  readonly http: HttpStatusSet;
  readonly grpc: GrpcStatusSet;
  /** `grpc` was given explicitly and is not empty: unmarked gRPC calls retry on it too. */
  readonly retriesGrpcCalls: boolean;
  readonly errorCodes: ReadonlySet<string>;
  readonly methods: ReadonlySet<string>;
  readonly retryNonIdempotent: boolean;
  readonly perTryTimeout: number | undefined;
  readonly retryOnPerTryTimeout: boolean;
  readonly maxReplayBytes: number;
  readonly backoff: Backoff;
  readonly retryAfterMax: number | false;
  readonly budget: RetryBudget | undefined;
  /** `@mesh/core`'s outcome classifier, with this policy's statuses and error codes. */
  readonly #retryable: OutcomeRule;

  constructor(options?: RetryPolicyOptions) {
    const o = optionsObject<RetryPolicyOptions>("retry", options, retryPolicyOptionNames);
    if (o.budget instanceof RetryBudget) this.budget = o.budget;
    else if (o.budget === false) this.budget = undefined;
    else this.budget = new RetryBudget(o.budget);
    this.name = nonEmptyString("retry.name", o.name, this.budget?.name ?? "default");
    this.limit = integerIn("retry.limit", o.limit, 1, 0, 100);
    this.http = new HttpStatusSet(o.http ?? "5xx", "retry.http");
    this.grpc = new GrpcStatusSet(o.grpc ?? defaultGrpc, "retry.grpc");
    this.retriesGrpcCalls = o.grpc !== undefined && !this.grpc.empty;
    this.errorCodes = new Set(stringList("retry.errorCodes", o.errorCodes, defaultErrorCodes));
    this.methods = new Set(
      stringList("retry.methods", o.methods, defaultRetryMethods).map((m) => m.toUpperCase()),
    );
    this.retryNonIdempotent = bool("retry.retryNonIdempotent", o.retryNonIdempotent, false);
    this.perTryTimeout =
      o.perTryTimeout === undefined
        ? undefined
        : numberIn("retry.perTryTimeout", o.perTryTimeout, 0, 1, 2_147_483_647);
    this.retryOnPerTryTimeout = bool("retry.retryOnPerTryTimeout", o.retryOnPerTryTimeout, true);
    this.maxReplayBytes = integerIn(
      "retry.maxReplayBytes",
      o.maxReplayBytes,
      64 * 1024,
      0,
      1 << 30,
    );
    this.backoff = new Backoff(o.backoff, "retry.backoff");
    const grpc = this.grpc;
    const http = this.http;
    this.#retryable = new OutcomeRule({
      name: "retryable",
      http: (status) => http.has(status),
      grpc: grpcStatusNames.map((_, code) => code).filter((code) => grpc.has(code)),
      failingErrors: this.errorCodes,
    });
    this.retryAfterMax =
      o.retryAfterMax === false
        ? false
        : numberIn("retry.retryAfterMax", o.retryAfterMax, 10_000, 0, 2_147_483_647);
  }

  /** Whether `method` may be retried without the request being marked retryable. */
  allowsMethod(method: string): boolean {
    return this.retryNonIdempotent || this.methods.has(method.toUpperCase());
  }

  /** The retry reason for an HTTP status, or undefined when it is not retryable. */
  classifyStatus(status: number): string | undefined {
    return this.#retryable.httpFails(status) ? `http-${status}` : undefined;
  }

  /** The retry reason for a gRPC status code, or undefined when it is not retryable. */
  classifyGrpc(code: number): string | undefined {
    return this.#retryable.grpcFails(code) ? `grpc-${grpcStatusNames[code] ?? code}` : undefined;
  }

  /** The retry reason for an error raised before any response byte, or undefined. */
  classifyError(error: unknown): string | undefined {
    if (error === null || typeof error !== "object") return undefined;
    const code = (error as { code?: unknown }).code;
    if (code === "MESH_RETRY_PER_TRY_TIMEOUT") {
      return this.retryOnPerTryTimeout ? "per-try-timeout" : undefined;
    }
    return this.#retryable.failingErrorCode(error);
  }

  /**
   * Decides whether retry number `retry` (1-based) may go ahead for `reason`: checks the
   * limit, then withdraws from the budget, publishing `limit-exceeded` / `budget-exhausted`
   * when it may not.
   */
  admit(retry: number, reason: string, origin: string): boolean {
    if (retry > this.limit) {
      if (limitExceededChannel.hasSubscribers) {
        limitExceededChannel.publish({ name: this.name, reason, origin });
      }
      return false;
    }
    if (this.budget !== undefined && !this.budget.tryWithdraw()) {
      if (budgetExhaustedChannel.hasSubscribers) {
        budgetExhaustedChannel.publish({ name: this.name, reason, origin });
      }
      return false;
    }
    return true;
  }

  /** Records an original request in the budget. */
  deposit(): void {
    this.budget?.deposit();
  }

  /**
   * The delay before retry number `retry`: the backoff, or the server's pushback
   * (`Retry-After`, `grpc-retry-pushback-ms`) when that is longer — pushback is a minimum,
   * never a shortcut past the backoff.
   * @returns the delay in ms, or undefined when the pushback asks for more than `retryAfterMax`.
   */
  delay(retry: number, retryAfterMs: number | undefined): number | undefined {
    const backoff = this.backoff.delay(retry);
    if (retryAfterMs !== undefined && this.retryAfterMax !== false) {
      return retryAfterMs <= this.retryAfterMax ? Math.max(retryAfterMs, backoff) : undefined;
    }
    return backoff;
  }
}

/** Accepts a {@link RetryPolicy} or options for one. */
export function toPolicy(options: RetryPolicy | RetryPolicyOptions | undefined): RetryPolicy {
  return options instanceof RetryPolicy ? options : new RetryPolicy(options);
}

function stringList(path: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v.length > 0)) {
    throw typeError(path, "an array of non-empty strings", value);
  }
  return value as string[];
}
