import type { Duplex } from "node:stream";
import type {
  DispatchController,
  DispatchHandler,
  IncomingHeaders,
  LegacyHandler,
} from "../types.js";
import { toRawHeaders } from "./raw-headers.js";

/** True when `handler` already speaks the controller-based API (it has `onRequestStart`). */
export function isControllerHandler(handler: object): handler is DispatchHandler {
  return typeof (handler as DispatchHandler).onRequestStart === "function";
}

/**
 * Returns a controller-API handler for `handler`: the handler itself when it already has
 * `onRequestStart`, otherwise an adapter that drives its legacy `onConnect` / `onHeaders` /
 * `onData` / `onComplete` / `onError` / `onUpgrade` callbacks.
 *
 * Call it first thing in every interceptor's dispatch and in every dispatcher's `dispatch()`:
 * undici 8 no longer adapts legacy handlers, and Node 24's global `fetch` (bundled undici 7)
 * passes one, so without it global `fetch` over an undici 8 dispatcher never settles.
 * Calling it on an already adapted handler is free (it is returned as is).
 *
 * The adapter keeps the legacy semantics: `onHeaders`/`onData` returning `false` pauses the
 * body and the `resume` callback resumes it; `abort(reason)` aborts through the controller;
 * headers and trailers arrive as flat latin1 Buffer lists, one pair per value.
 *
 * @example
 * const logging = asInterceptor((dispatch) => (opts, handler) => {
 *   const downstream = toControllerHandler(handler);
 *   return dispatch(opts, new LoggingHandler(downstream));
 * });
 */
export function toControllerHandler(handler: DispatchHandler | LegacyHandler): DispatchHandler {
  if (isControllerHandler(handler)) return handler;
  return new LegacyHandlerAdapter(handler as LegacyHandler);
}

/** The reason `abort()` falls back to when a legacy handler aborts without one. */
function abortedError(): Error {
  return new DOMException("This operation was aborted", "AbortError");
}

/** Presents one legacy handler through the controller API for one request. */
class LegacyHandlerAdapter implements DispatchHandler {
  readonly #h: LegacyHandler;

  constructor(handler: LegacyHandler) {
    this.#h = handler;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.#h.onConnect?.((reason) => controller.abort(reason ?? abortedError()), context);
  }

  onResponseStarted(): void {
    this.#h.onResponseStarted?.();
  }

  onBodySent(chunk: Buffer | number): void {
    this.#h.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    this.#h.onRequestSent?.();
  }

  onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    socket: Duplex,
  ): void {
    const h = this.#h as LegacyHandler & DispatchHandler;
    if (typeof h.onUpgrade === "function") h.onUpgrade(statusCode, toRawHeaders(headers), socket);
    else h.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    statusMessage?: string,
  ): void {
    const onHeaders = this.#h.onHeaders;
    if (onHeaders === undefined) return;
    const resume = () => controller.resume();
    const proceed = onHeaders.call(
      this.#h,
      statusCode,
      toRawHeaders(headers),
      resume,
      statusMessage ?? "",
    );
    // A 1xx response has no body to hold back, and a pause left over from it would stall the
    // final response until the caller happens to resume.
    if (proceed === false && statusCode >= 200) controller.pause();
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (this.#h.onData?.(chunk) === false) controller.pause();
  }

  onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders): void {
    this.#h.onComplete?.(toRawHeaders(trailers));
  }

  onResponseError(_controller: DispatchController | null, error: Error): void {
    // A handler that cannot hear about errors must not have them swallowed.
    if (typeof this.#h.onError !== "function") throw error;
    this.#h.onError(error);
  }
}
