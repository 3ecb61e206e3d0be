import {
  nonEmptyString,
  numberIn,
  type OptionNames,
  optionsObject,
  toControllerHandler,
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

/** Options of the {@link timeout} interceptor. */
export interface TimeoutOptions {
  /** Total deadline in ms from dispatch to the end of the response, across every attempt below. */
  request?: number;
  /** Longest pause in ms between response body chunks (time the caller pauses the body does not count). */
  idle?: number;
  /** Name carried by `mesh:retry:timeout` events. Default `"default"`. */
  name?: string;
}

const MAX_TIMER = 2_147_483_647;

const timeoutOptionNames: OptionNames = {
  known: ["request", "idle", "name"],
  hints: {
    timeout: "request",
    total: "request",
    deadline: "request",
    requestTimeout: "request",
    headersTimeout: "request",
    idleTimeout: "idle",
    bodyTimeout: "idle",
    perTry: "retry({ perTryTimeout })",
    perTryTimeout: "retry({ perTryTimeout })",
  },
};

/**
 * An undici interceptor for the total request deadline and the idle timeout. Requests that
 * time out fail with {@link RequestTimeoutError} or {@link IdleTimeoutError} (never retried).
 * Compose it outermost — after `retry()` in `compose(...)` — so the deadline spans all
 * attempts; per-try timeouts belong to `retry({ perTryTimeout })`.
 */
export function timeout(options?: TimeoutOptions): Interceptor {
  const o = optionsObject<TimeoutOptions>("timeout", options, timeoutOptionNames);
  const request =
    o.request === undefined ? undefined : numberIn("timeout.request", o.request, 0, 1, MAX_TIMER);
  const idle = o.idle === undefined ? undefined : numberIn("timeout.idle", o.idle, 0, 1, MAX_TIMER);
  const name = nonEmptyString("timeout.name", o.name, "default");
  return asInterceptor((dispatch: Dispatch): Dispatch => {
    return function meshTimeout(opts: DispatchOptions, handler: DispatchHandler): boolean {
      const downstream = toControllerHandler(handler);
      if (request === undefined && idle === undefined) return dispatch(opts, downstream);
      const timed = new TimedRequest(name, opts, downstream, request, idle);
      return dispatch(opts, timed);
    };
  });
}

class TimedRequest implements DispatchHandler {
  readonly #name: string;
  readonly #origin: unknown;
  readonly #handler: DispatchHandler;
  readonly #idleMs: number | undefined;
  readonly #controller: ForwardingController;
  #below: DispatchController | null = null;
  #requestTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #inBody = false;
  #done = false;
  #timedOut: MeshTimeoutError | null = null;

  constructor(
    name: string,
    opts: DispatchOptions,
    handler: DispatchHandler,
    requestMs: number | undefined,
    idleMs: number | undefined,
  ) {
    this.#name = name;
    this.#origin = opts.origin;
    this.#handler = handler;
    this.#idleMs = idleMs;
    this.#controller = new TimeoutController(this);
    if (requestMs !== undefined) {
      this.#requestTimer = setTimeout(() => {
        this.#requestTimer = null;
        this.#expire(new RequestTimeoutError(requestMs));
      }, requestMs);
    }
  }

  /** Called by our controller: the caller paused or resumed the body. */
  paused(paused: boolean): void {
    if (!this.#inBody || this.#done) return;
    if (paused) this.#clearIdle();
    else this.#armIdle();
  }

  /** Called by our controller: the caller aborted. */
  aborted(reason: Error): void {
    if (this.#done) return;
    if (this.#below !== null) {
      this.#below.abort(reason);
      // The dispatcher reports the abort through onResponseError; make sure it is delivered.
      if (!this.#done) this.#fail(reason);
    } else {
      this.#fail(reason);
    }
  }

  #expire(error: MeshTimeoutError): void {
    if (this.#done) return;
    this.#timedOut = error;
    if (timeoutChannel.hasSubscribers) {
      timeoutChannel.publish({
        name: this.#name,
        kind: error.kind,
        timeoutMs: error.timeoutMs,
        origin: this.#origin === undefined ? "" : String(this.#origin).replace(/\/$/, ""),
      });
    }
    this.aborted(error);
  }

  #armIdle(): void {
    const ms = this.#idleMs;
    if (ms === undefined) return;
    if (this.#idleTimer !== null) {
      this.#idleTimer.refresh();
      return;
    }
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.#expire(new IdleTimeoutError(ms));
    }, ms);
  }

  #clearIdle(): void {
    if (this.#idleTimer !== null) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
  }

  #clearAll(): void {
    this.#clearIdle();
    if (this.#requestTimer !== null) {
      clearTimeout(this.#requestTimer);
      this.#requestTimer = null;
    }
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAll();
    this.#handler.onResponseError?.(
      this.#below === null ? detachedController(error) : this.#controller,
      error,
    );
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    if (this.#done) {
      controller.abort(this.#timedOut ?? new Error("aborted"));
      return;
    }
    this.#below = controller;
    (this.#controller as TimeoutController).setTarget(controller);
    this.#handler.onRequestStart?.(this.#controller, context);
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
    this.#handler.onRequestUpgrade?.(this.#controller, status, headers as never, socket);
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
      if (!this.#controller.paused) this.#armIdle();
    }
    this.#handler.onResponseStart?.(this.#controller, status, headers as never, statusText);
  }

  onResponseData(_controller: DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (this.#idleTimer !== null) this.#idleTimer.refresh();
    this.#handler.onResponseData?.(this.#controller, chunk);
  }

  onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAll();
    this.#handler.onResponseEnd?.(this.#controller, trailers as never);
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

/** Our controller: forwards to the one below and tells us about pauses and aborts. */
class TimeoutController extends ForwardingController {
  readonly #owner: TimedRequest;
  constructor(owner: TimedRequest) {
    super((reason) => owner.aborted(reason));
    this.#owner = owner;
  }
  override pause(): void {
    super.pause();
    this.#owner.paused(true);
  }
  override resume(): void {
    super.resume();
    this.#owner.paused(false);
  }
}
