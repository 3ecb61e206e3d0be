import {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type Interceptor,
  integerIn,
  numberIn,
  type OptionNames,
  optionsObject,
  toControllerHandler,
  typeError,
} from "@mesh/core";
import { RateLimitedError } from "../errors.js";
import { queuedChannel } from "../events.js";
import { RateLimiter, type RateLimiterOptions } from "../rate/rate-limiter.js";

/** Options of the {@link rateLimit} interceptor. */
export interface RateLimitInterceptorOptions {
  /** The limiter (shared with other code), or options to build one. */
  limiter: RateLimiter | RateLimiterOptions;
  /** The key of a request for per-key limits (e.g. its origin). Default: none, total only. */
  key?: (options: DispatchOptions) => string | undefined;
  /**
   * What a request over the limit does: `"fail-fast"` (default) fails it at once with
   * {@link RateLimitedError}; `"queue"` delays it until it conforms, up to `maxWait` and
   * `maxQueue`, and fails it beyond those.
   */
  mode?: "fail-fast" | "queue";
  /** Queue mode: longest delay, ms. Default 1000. */
  maxWait?: number;
  /** Queue mode: most requests waiting at once. Default 1000. */
  maxQueue?: number;
}

const names: OptionNames = {
  known: ["limiter", "key", "mode", "maxWait", "maxQueue"],
  hints: { queue: "mode", failFast: "mode", timeout: "maxWait", queueSize: "maxQueue" },
};

/** A controller for a request that never reached the dispatcher below. */
function failedController(reason: Error): DispatchController {
  return {
    aborted: true,
    paused: false,
    reason,
    abort() {},
    pause() {},
    resume() {},
  };
}

/**
 * An undici interceptor that rate limits outbound requests (GCRA, see {@link RateLimiter}).
 * Refused requests fail with {@link RateLimitedError} (`statusCode` 429, `retryAfterMs`)
 * without touching the network; in `"queue"` mode they are delayed instead, within bounds.
 * Uses only the controller-based handler API, so it composes onto undici 7 and 8
 * dispatchers: `new Agent().compose(rateLimit({ limiter: { total: { requestsPerSecond: 100 } } }))`.
 *
 * A queued request cannot be aborted before it is dispatched (undici hands out its abort
 * controller at dispatch); `maxWait` bounds how long that is.
 */
export function rateLimit(options: RateLimitInterceptorOptions): Interceptor {
  const o = optionsObject<RateLimitInterceptorOptions>("rateLimit", options, names);
  if (options === undefined) throw typeError("rateLimit", "an options object", options);
  const limiter =
    o.limiter instanceof RateLimiter ? o.limiter : new RateLimiter(o.limiter as RateLimiterOptions);
  if (o.key !== undefined && typeof o.key !== "function") {
    throw typeError("rateLimit.key", "a function (options) => string | undefined", o.key);
  }
  const key = o.key;
  const mode = o.mode ?? "fail-fast";
  if (mode !== "fail-fast" && mode !== "queue") {
    throw typeError("rateLimit.mode", '"fail-fast" or "queue"', mode);
  }
  const maxWait =
    mode === "queue" ? numberIn("rateLimit.maxWait", o.maxWait, 1000, 0, 2_147_483_647) : 0;
  const maxQueue = integerIn("rateLimit.maxQueue", o.maxQueue, 1000, 0, 1e7);
  let queued = 0;
  return asInterceptor((dispatch: Dispatch): Dispatch => {
    return function meshRateLimit(opts: DispatchOptions, handler: DispatchHandler): boolean {
      const k = key === undefined ? undefined : key(opts);
      const full = queued >= maxQueue;
      const wait = limiter.tryAcquire(k, full ? 0 : maxWait);
      if (wait === 0) return dispatch(opts, toControllerHandler(handler));
      const downstream = toControllerHandler(handler);
      if (wait < 0) {
        // Queueing would have admitted it but the queue is full: say so.
        const code =
          maxWait > 0 && full && -wait <= maxWait
            ? "MESH_LIMIT_QUEUE_FULL"
            : "MESH_LIMIT_RATE_LIMITED";
        const err = new RateLimitedError(code, -wait, limiter.rejectedBy ?? "total");
        queueMicrotask(() => downstream.onResponseError?.(failedController(err), err));
        return true;
      }
      queued++;
      if (queuedChannel.hasSubscribers) {
        queuedChannel.publish({ name: limiter.name, key: k, waitMs: wait });
      }
      setTimeout(() => {
        queued--;
        try {
          dispatch(opts, downstream);
        } catch (err) {
          downstream.onResponseError?.(failedController(err as Error), err as Error);
        }
      }, wait);
      return true;
    };
  });
}
