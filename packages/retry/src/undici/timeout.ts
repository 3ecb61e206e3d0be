import {
  type Clock,
  clockOption,
  monotonicClock,
  nonEmptyString,
  numberIn,
  type OptionNames,
  optionsObject,
  toControllerHandler,
  typeError,
} from "@mesh/core";
import { timeoutChannel } from "../events.js";
import { IdleTimeoutError, type MeshTimeoutError, RequestTimeoutError } from "../timeout/errors.js";
import { detachedController, ForwardingController } from "./controller.js";
import {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type Interceptor,
} from "./types.js";

/**
 * Timers {@link timeout} schedules on: Node's by default; injectable (with `clock`) so tests
 * drive deadlines by hand. `setTimeout(callback, ms, arg)` calls `callback(arg)` once after
 * `ms` and returns a handle for `clearTimeout`.
 */
export interface TimeoutTimers {
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg: A): unknown;
  clearTimeout(handle: unknown): void;
}

const nodeTimers = { setTimeout, clearTimeout } as unknown as TimeoutTimers;

/** Options of the {@link timeout} interceptor. */
export interface TimeoutOptions {
  /** Total deadline in ms from dispatch to the end of the response, across every attempt below. */
  request?: number;
  /**
   * This request's own deadline in ms from dispatch (a gRPC `grpc-timeout`, a deadline the
   * caller carries in the options), or `undefined` for none. Called once per request; the
   * request fails at the earlier of this and `request`. 0 or less fails it without
   * dispatching; anything but a number is ignored.
   */
  deadline?: (opts: DispatchOptions) => number | undefined;
  /** Longest pause in ms between response body chunks (time the caller pauses the body does not count). */
  idle?: number;
  /** Name carried by `mesh:retry:timeout` events. Default `"default"`. */
  name?: string;
  /** Where idle time is read. Default `monotonicClock` (`performance.now()`). */
  clock?: Clock;
  /** Where deadlines are scheduled. Default Node's `setTimeout` / `clearTimeout`. */
  timers?: TimeoutTimers;
}

const MAX_TIMER = 2_147_483_647;

const timeoutOptionNames: OptionNames = {
  known: ["request", "deadline", "idle", "name", "clock", "timers"],
  hints: {
    timeout: "request",
    total: "request",
    requestTimeout: "request",
    headersTimeout: "request",
    idleTimeout: "idle",
    bodyTimeout: "idle",
    perTry: "retry({ perTryTimeout })",
    perTryTimeout: "retry({ perTryTimeout })",
  },
};

/** What every request of one {@link timeout} interceptor shares. */
interface TimeoutSettings {
  readonly name: string;
  readonly idleMs: number | undefined;
  readonly clock: Clock;
  readonly timers: TimeoutTimers;
}

/**
 * An undici interceptor for the total request deadline and the idle timeout. Requests that
 * time out fail with {@link RequestTimeoutError} or {@link IdleTimeoutError} (never retried).
 * Compose it outermost — after `retry()` in `compose(...)` — so the deadline spans all
 * attempts; per-try timeouts belong to `retry({ perTryTimeout })`.
 *
 * Per request it allocates one object (its handler, which is also the controller handed
 * up) and the timers themselves: callbacks are shared, and body chunks only read the clock.
 */
export function timeout(options?: TimeoutOptions): Interceptor {
  const o = optionsObject<TimeoutOptions>("timeout", options, timeoutOptionNames);
  const request =
    o.request === undefined ? undefined : numberIn("timeout.request", o.request, 0, 1, MAX_TIMER);
  const idle = o.idle === undefined ? undefined : numberIn("timeout.idle", o.idle, 0, 1, MAX_TIMER);
  if (o.deadline !== undefined && typeof o.deadline !== "function")
    throw typeError("timeout.deadline", "a function (opts) => ms | undefined", o.deadline);
  const deadline = o.deadline;
  const timers = o.timers ?? nodeTimers;
  if (typeof timers.setTimeout !== "function" || typeof timers.clearTimeout !== "function")
    throw typeError("timeout.timers", "{ setTimeout, clearTimeout }", timers);
  const settings: TimeoutSettings = {
    name: nonEmptyString("timeout.name", o.name, "default"),
    idleMs: idle,
    clock: clockOption("timeout.clock", o.clock, monotonicClock),
    timers,
  };
  return asInterceptor((dispatch: Dispatch): Dispatch => {
    return function meshTimeout(opts: DispatchOptions, handler: DispatchHandler): boolean {
      const downstream = toControllerHandler(handler);
      let ms = request;
      if (deadline !== undefined) {
        const own = deadline(opts);
        if (typeof own === "number" && !Number.isNaN(own) && (ms === undefined || own < ms))
          ms = Math.min(own, MAX_TIMER);
      }
      if (ms === undefined && idle === undefined) return dispatch(opts, downstream);
      const timed = new TimedRequest(settings, opts, downstream, ms);
      if (ms !== undefined && ms <= 0) {
        queueMicrotask(() => timed.expire(new RequestTimeoutError(Math.max(0, ms))));
        return true;
      }
      return dispatch(opts, timed);
    };
  });
}

// Timer callbacks shared by every request (the request rides as the timer's argument), so
// arming a timer allocates no closure.
function onRequestDeadline(r: TimedRequest): void {
  r.requestDeadline();
}
function onIdleCheck(r: TimedRequest): void {
  r.idleCheck();
}

/**
 * One request under {@link timeout}: the handler below sees it, and it is also the
 * controller the handler above holds (pause/resume go to the current attempt; abort is
 * routed here, which knows whether an attempt is live).
 */
class TimedRequest extends ForwardingController implements DispatchHandler {
  readonly #settings: TimeoutSettings;
  readonly #origin: unknown;
  readonly #handler: DispatchHandler;
  readonly #requestMs: number | undefined;
  #below: DispatchController | null = null;
  #requestTimer: unknown = null;
  #idleTimer: unknown = null;
  /** When the body last moved (or was resumed), by the clock. */
  #lastActivity = 0;
  #inBody = false;
  #done = false;
  #timedOut: MeshTimeoutError | null = null;

  constructor(
    settings: TimeoutSettings,
    opts: DispatchOptions,
    handler: DispatchHandler,
    requestMs: number | undefined,
  ) {
    super();
    this.#settings = settings;
    this.#origin = opts.origin;
    this.#handler = handler;
    this.#requestMs = requestMs;
    if (requestMs !== undefined && requestMs > 0)
      this.#requestTimer = settings.timers.setTimeout(onRequestDeadline, requestMs, this);
  }

  // --- the controller handed to the handler above ---

  override pause(): void {
    super.pause();
    if (this.#inBody && !this.#done) this.#clearIdle();
  }

  override resume(): void {
    super.resume();
    if (this.#inBody && !this.#done) this.#armIdle();
  }

  protected override onAbort(reason: Error): void {
    if (this.#done) return;
    if (this.#below !== null) {
      this.#below.abort(reason);
      // The dispatcher reports the abort through onResponseError; make sure it is delivered.
      if (!this.#done) this.#fail(reason);
    } else {
      this.#fail(reason);
    }
  }

  // --- timers ---

  requestDeadline(): void {
    this.#requestTimer = null;
    this.expire(new RequestTimeoutError(this.#requestMs as number));
  }

  /** The idle timer fired: expire if the body has been quiet for the whole idle time. */
  idleCheck(): void {
    this.#idleTimer = null;
    if (this.#done || this.paused) return;
    const idleMs = this.#settings.idleMs as number;
    const quiet = this.#settings.clock.now() - this.#lastActivity;
    if (quiet >= idleMs) this.expire(new IdleTimeoutError(idleMs));
    else this.#idleTimer = this.#settings.timers.setTimeout(onIdleCheck, idleMs - quiet, this);
  }

  expire(error: MeshTimeoutError): void {
    if (this.#done) return;
    this.#timedOut = error;
    if (timeoutChannel.hasSubscribers) {
      timeoutChannel.publish({
        name: this.#settings.name,
        kind: error.kind,
        timeoutMs: error.timeoutMs,
        origin: this.#origin === undefined ? "" : String(this.#origin).replace(/\/$/, ""),
      });
    }
    this.abort(error);
  }

  #armIdle(): void {
    const ms = this.#settings.idleMs;
    if (ms === undefined) return;
    this.#lastActivity = this.#settings.clock.now();
    // A timer already armed checks the clock when it fires, and re-arms for the rest.
    if (this.#idleTimer === null)
      this.#idleTimer = this.#settings.timers.setTimeout(onIdleCheck, ms, this);
  }

  #clearIdle(): void {
    if (this.#idleTimer !== null) {
      this.#settings.timers.clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
  }

  #clearAll(): void {
    this.#clearIdle();
    if (this.#requestTimer !== null) {
      this.#settings.timers.clearTimeout(this.#requestTimer);
      this.#requestTimer = null;
    }
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAll();
    this.#handler.onResponseError?.(this.#below === null ? detachedController(error) : this, error);
  }

  // --- DispatchHandler (seen by the dispatcher below) ---

  onRequestStart(controller: DispatchController, context: unknown): void {
    if (this.#done) {
      controller.abort(this.#timedOut ?? new Error("aborted"));
      return;
    }
    this.#below = controller;
    this.setTarget(controller);
    this.#handler.onRequestStart?.(this, context);
  }

  onResponseStarted(): void {
    if (!this.#done) this.#handler.onResponseStarted?.();
  }

  onRequestUpgrade(
    _controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    socket: never,
  ): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAll();
    this.#handler.onRequestUpgrade?.(this, status, headers as never, socket);
  }

  onResponseStart(
    _controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    statusText?: string,
  ): void {
    if (this.#done) return;
    if (status >= 200) {
      this.#inBody = true;
      if (!this.paused) this.#armIdle();
    }
    this.#handler.onResponseStart?.(this, status, headers as never, statusText);
  }

  onResponseData(_controller: DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (this.#idleTimer !== null) this.#lastActivity = this.#settings.clock.now();
    this.#handler.onResponseData?.(this, chunk);
  }

  onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAll();
    this.#handler.onResponseEnd?.(this, trailers as never);
  }

  onResponseError(_controller: DispatchController, error: Error): void {
    this.#fail(this.#timedOut ?? error);
  }

  onBodySent(chunk: Buffer): void {
    if (!this.#done) this.#handler.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    if (!this.#done) this.#handler.onRequestSent?.();
  }
}
