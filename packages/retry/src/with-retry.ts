import { nonEmptyString, type OptionNames, optionsObject, suggest, typeError } from "@mesh/core";
import { parseRetryAfter } from "./backoff/backoff.js";
import { attemptChannel, retryChannel, timeoutChannel } from "./events.js";
import {
  type RetryPolicy,
  type RetryPolicyOptions,
  retryPolicyOptionNames,
  toPolicy,
} from "./policy/retry-policy.js";
import { PerTryTimeoutError } from "./timeout/errors.js";

/** What each attempt of {@link withRetry} receives. */
export interface AttemptContext {
  /** 0 for the original call, then 1, 2, ... */
  attempt: number;
  /** Aborted when the caller's signal aborts or the per-try timeout elapses. Pass it on. */
  signal: AbortSignal;
}

/** Options of {@link withRetry}. */
export interface WithRetryOptions<T> {
  /** The policy (limit, statuses, backoff, budget) — shared with the interceptors if you like. */
  policy?: RetryPolicy | RetryPolicyOptions;
  /** Cancels the operation, including a pending backoff, at once. */
  signal?: AbortSignal;
  /** Label for events (as `origin`), e.g. the upstream the operation talks to. Default `""`. */
  target?: string;
  /**
   * Decides whether a result should be retried. Default: retry results carrying a retryable
   * `status` (or `statusCode`), as `fetch` responses do; their body is cancelled first.
   */
  retryResult?: (result: T) => string | undefined;
  /**
   * Decides whether an error should be retried. Default: connection error codes, per-try
   * timeouts, and errors carrying a retryable `status`/`statusCode`.
   */
  retryError?: (error: unknown) => string | undefined;
}

const withRetryOptionNames: OptionNames = {
  known: ["policy", "signal", "target", "retryResult", "retryError"],
  // Policy options given at the top level belong under `policy`.
  hints: Object.fromEntries(
    [...retryPolicyOptionNames.known, ...Object.keys(retryPolicyOptionNames.hints ?? {})].map(
      (key) => [key, `policy.${suggest(key, retryPolicyOptionNames)?.replaceAll('"', "")}`],
    ),
  ),
};

/**
 * Runs `fn` under a retry policy and budget: the call deposits in the budget, each retry
 * withdraws, at most `limit` retries, full-jitter backoff or `Retry-After` between them, and
 * an optional per-try timeout that aborts the attempt's signal. The caller's `signal` stops
 * everything at once with its reason.
 *
 * Only use it for operations that are safe to repeat.
 */
export async function withRetry<T>(
  fn: (context: AttemptContext) => Promise<T>,
  options?: WithRetryOptions<T>,
): Promise<T> {
  if (typeof fn !== "function") throw typeError("withRetry fn", "a function", fn);
  const o = optionsObject<WithRetryOptions<T>>("withRetry", options, withRetryOptionNames);
  const policy = toPolicy(o.policy);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw typeError("withRetry.signal", "an AbortSignal", signal);
  }
  const target = nonEmptyString("withRetry.target", o.target, "");
  const retryResult = o.retryResult ?? ((r: T) => defaultResultReason(policy, r));
  const retryError = o.retryError ?? ((e: unknown) => defaultErrorReason(policy, e));

  signal?.throwIfAborted();
  policy.deposit();
  for (let attempt = 0; ; attempt++) {
    if (attemptChannel.hasSubscribers) {
      attemptChannel.publish({ name: policy.name, attempt, method: "", origin: target, path: "" });
    }
    let reason: string | undefined;
    let retryAfter: number | undefined;
    let failure: { error: unknown } | undefined;
    let result: T | undefined;
    const tryController = new AbortController();
    const stop = () => tryController.abort(signal?.reason);
    signal?.addEventListener("abort", stop, { once: true });
    let timer: NodeJS.Timeout | undefined;
    if (policy.perTryTimeout !== undefined) {
      const ms = policy.perTryTimeout;
      timer = setTimeout(() => {
        if (timeoutChannel.hasSubscribers) {
          timeoutChannel.publish({
            name: policy.name,
            kind: "per-try",
            timeoutMs: ms,
            origin: target,
          });
        }
        tryController.abort(new PerTryTimeoutError(ms));
      }, ms);
    }
    try {
      result = await raceAbort(fn({ attempt, signal: tryController.signal }), tryController.signal);
      reason = retryResult(result);
      if (reason !== undefined) retryAfter = readRetryAfter(result);
    } catch (error) {
      failure = { error };
      if (!signal?.aborted) {
        reason = retryError(error);
        if (reason !== undefined) retryAfter = readRetryAfter(error);
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", stop);
    }
    signal?.throwIfAborted();
    const delay = reason === undefined ? undefined : policy.delay(attempt + 1, retryAfter);
    if (reason === undefined || delay === undefined || !policy.admit(attempt + 1, reason, target)) {
      if (failure) throw failure.error;
      return result as T;
    }
    if (retryChannel.hasSubscribers) {
      retryChannel.publish({
        name: policy.name,
        attempt: attempt + 1,
        reason,
        delayMs: delay,
        origin: target,
      });
    }
    if (!failure) await discardBody(result);
    await sleep(delay, signal);
  }
}

/** Resolves with the promise, or rejects as soon as `signal` aborts (with its reason). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function statusOf(value: unknown): number | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const v = value as { status?: unknown; statusCode?: unknown };
  const status = typeof v.status === "number" ? v.status : v.statusCode;
  return typeof status === "number" ? status : undefined;
}

function defaultResultReason(policy: RetryPolicy, result: unknown): string | undefined {
  const status = statusOf(result);
  return status === undefined ? undefined : policy.classifyStatus(status);
}

function defaultErrorReason(policy: RetryPolicy, error: unknown): string | undefined {
  const reason = policy.classifyError(error);
  if (reason !== undefined) return reason;
  const status = statusOf(error);
  return status === undefined ? undefined : policy.classifyStatus(status);
}

function readRetryAfter(value: unknown): number | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const headers = (value as { headers?: unknown }).headers;
  if (headers === null || typeof headers !== "object") return undefined;
  const raw =
    typeof (headers as Headers).get === "function"
      ? (headers as Headers).get("retry-after")
      : (headers as Record<string, unknown>)["retry-after"];
  return parseRetryAfter(raw ?? undefined);
}

async function discardBody(result: unknown): Promise<void> {
  if (result === null || typeof result !== "object") return;
  const body = (result as { body?: unknown }).body;
  if (body && typeof (body as ReadableStream).cancel === "function") {
    await (body as ReadableStream).cancel().catch(() => {});
  } else if (body && typeof (body as { dump?: unknown }).dump === "function") {
    await (body as { dump(): Promise<void> }).dump().catch(() => {});
  }
}
