import { toControllerHandler } from "@mesh/core";
import {
  type BreakerOutcome,
  type CircuitBreakerOptions,
  CircuitBreakers,
} from "../breaker/circuit-breakers.js";
import type { BreakerState } from "../events.js";
import { detachedController } from "./controller.js";
import {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type Interceptor,
} from "./types.js";

/** The interceptor returned by {@link circuitBreaker}, with access to its breakers. */
export type CircuitBreakerInterceptor = Interceptor & {
  /** State of the breaker for an origin (e.g. `http://127.0.0.1:8080`). */
  state(origin: string): BreakerState;
  /** Stops the breakers' timers (for shutdown and tests). */
  shutdown(): void;
};

/**
 * An undici interceptor with one circuit breaker per origin. A response with a failure status
 * (default 5xx) or a connection error counts as a failure; a request aborted by the caller does
 * not count. While a breaker is open, requests fail fast with {@link CircuitOpenError} without
 * being sent; after `resetTimeout` one probe goes through (half-open) and its outcome closes
 * or reopens the breaker.
 *
 * Compose it innermost so that every attempt is counted:
 * `agent.compose(circuitBreaker(), retry(), timeout({ request: 2000 }))`.
 */
export function circuitBreaker(
  options?: CircuitBreakerOptions | CircuitBreakers,
): CircuitBreakerInterceptor {
  const breakers = options instanceof CircuitBreakers ? options : new CircuitBreakers(options);
  const interceptor = (dispatch: Dispatch): Dispatch =>
    function meshCircuitBreaker(opts: DispatchOptions, handler: DispatchHandler): boolean {
      const downstream = toControllerHandler(handler);
      const name = opts.origin === undefined ? "" : String(opts.origin).replace(/\/$/, "");
      let result = true;
      breakers.call(
        name,
        (settle) => {
          result = dispatch(opts, new BreakerHandler(downstream, breakers, settle));
        },
        (error) => downstream.onResponseError?.(detachedController(error), error),
      );
      return result;
    };
  return Object.assign(asInterceptor(interceptor), {
    state: (origin: string) => breakers.state(origin.replace(/\/$/, "")),
    shutdown: () => breakers.shutdown(),
  });
}

/** Passes everything through and reports the outcome to the breaker once. */
class BreakerHandler implements DispatchHandler {
  readonly #handler: DispatchHandler;
  readonly #breakers: CircuitBreakers;
  #settle: ((outcome: BreakerOutcome) => void) | null;

  constructor(
    handler: DispatchHandler,
    breakers: CircuitBreakers,
    settle: (outcome: BreakerOutcome) => void,
  ) {
    this.#handler = handler;
    this.#breakers = breakers;
    this.#settle = settle;
  }

  #report(outcome: BreakerOutcome): void {
    const settle = this.#settle;
    this.#settle = null;
    settle?.(outcome);
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context);
  }
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }
  onRequestUpgrade(
    controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    socket: never,
  ): void {
    this.#report("success");
    this.#handler.onRequestUpgrade?.(controller, status, headers as never, socket);
  }
  onResponseStart(
    controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    statusText?: string,
  ): void {
    if (status >= 200) {
      this.#report(this.#breakers.failureStatuses.has(status) ? "failure" : "success");
    }
    this.#handler.onResponseStart?.(controller, status, headers as never, statusText);
  }
  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: DispatchController, trailers: IncomingHeaders): void {
    this.#report("success");
    this.#handler.onResponseEnd?.(controller, trailers as never);
  }
  onResponseError(controller: DispatchController | undefined, error: Error): void {
    // An abort from above (caller, outer deadline) says nothing about the upstream's health,
    // except our own timeouts, which do.
    const fromAbove =
      controller?.aborted === true &&
      !String((error as { code?: unknown }).code ?? "").startsWith("MESH_RETRY_");
    this.#report(fromAbove ? "neutral" : "failure");
    this.#handler.onResponseError?.(controller ?? detachedController(error), error);
  }
  onBodySent(chunk: Buffer): void {
    this.#handler.onBodySent?.(chunk);
  }
  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
}
