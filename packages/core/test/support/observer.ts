import {
  asInterceptor,
  type DispatchController,
  type DispatchHandler,
  type IncomingHeaders,
  type Interceptor,
  toControllerHandler,
} from "../../src/index.js";

/** What the observing interceptor saw of one request, below the adapter. */
export interface Observation {
  /** toControllerHandler returned an adapter (the caller's handler was a legacy one). */
  adapted: boolean;
  started: boolean;
  statuses: number[];
  chunks: number;
  /** Body chunks that arrived while the controller below was paused (must stay 0). */
  chunksWhilePaused: number;
  pauses: number;
  resumes: number;
  aborted: Error | null;
  ended: boolean;
  errors: Error[];
}

/**
 * A trivial interceptor of the kind this package is for: it adapts the caller's handler with
 * toControllerHandler, then watches the controller API between the dispatcher and the adapter.
 */
export function observing(): { interceptor: Interceptor; seen: Observation[] } {
  const seen: Observation[] = [];
  const interceptor = asInterceptor((dispatch) => (opts, handler) => {
    const downstream = toControllerHandler(handler);
    const o: Observation = {
      adapted: downstream !== handler,
      started: false,
      statuses: [],
      chunks: 0,
      chunksWhilePaused: 0,
      pauses: 0,
      resumes: 0,
      aborted: null,
      ended: false,
      errors: [],
    };
    seen.push(o);
    return dispatch(opts, new Observer(downstream, o));
  });
  return { interceptor, seen };
}

class Observer implements DispatchHandler {
  readonly #next: DispatchHandler;
  readonly #o: Observation;
  #below: DispatchController | null = null;
  #controller: DispatchController | null = null;

  constructor(next: DispatchHandler, o: Observation) {
    this.#next = next;
    this.#o = o;
  }

  #wrap(below: DispatchController): DispatchController {
    if (this.#controller === null || this.#below !== below) {
      this.#below = below;
      this.#controller = new CountingController(below, this.#o);
    }
    return this.#controller;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.#o.started = true;
    this.#next.onRequestStart?.(this.#wrap(controller), context);
  }
  onResponseStarted(): void {
    this.#next.onResponseStarted?.();
  }
  onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    socket: never,
  ): void {
    this.#o.statuses.push(statusCode);
    this.#next.onRequestUpgrade?.(this.#wrap(controller), statusCode, headers, socket);
  }
  onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    statusMessage?: string,
  ): void {
    this.#o.statuses.push(statusCode);
    this.#next.onResponseStart?.(this.#wrap(controller), statusCode, headers, statusMessage);
  }
  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.#o.chunks++;
    if (controller.paused) this.#o.chunksWhilePaused++;
    this.#next.onResponseData?.(this.#wrap(controller), chunk);
  }
  onResponseEnd(controller: DispatchController, trailers: IncomingHeaders): void {
    this.#o.ended = true;
    this.#next.onResponseEnd?.(this.#wrap(controller), trailers);
  }
  onResponseError(controller: DispatchController | null, error: Error): void {
    this.#o.errors.push(error);
    this.#next.onResponseError?.(
      controller === null ? (this.#controller as DispatchController) : this.#wrap(controller),
      error,
    );
  }
  onBodySent(chunk: Buffer | number): void {
    this.#next.onBodySent?.(chunk);
  }
  onRequestSent(): void {
    this.#next.onRequestSent?.();
  }
}

class CountingController implements DispatchController {
  readonly #below: DispatchController;
  readonly #o: Observation;

  constructor(below: DispatchController, o: Observation) {
    this.#below = below;
    this.#o = o;
  }
  get aborted(): boolean {
    return this.#below.aborted;
  }
  get paused(): boolean {
    return this.#below.paused;
  }
  get reason(): Error | null {
    return this.#below.reason;
  }
  get rawHeaders(): DispatchController["rawHeaders"] {
    return this.#below.rawHeaders;
  }
  get rawTrailers(): DispatchController["rawTrailers"] {
    return this.#below.rawTrailers;
  }
  abort(reason: Error): void {
    this.#o.aborted = reason;
    this.#below.abort(reason);
  }
  pause(): void {
    this.#o.pauses++;
    this.#below.pause();
  }
  resume(): void {
    this.#o.resumes++;
    this.#below.resume();
  }
}
