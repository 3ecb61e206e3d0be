import type { Duplex } from "node:stream";

/**
 * Parsed response headers or trailers as handlers of the controller API receive them:
 * lowercase names, repeated headers as arrays.
 */
export type IncomingHeaders = Record<string, string | string[] | undefined>;

/**
 * The controller a dispatcher hands to a {@link DispatchHandler} for one request: it pauses and
 * resumes the response body and aborts the request. Structurally the same as undici 7's and
 * undici 8's `Dispatcher.DispatchController`, so either can be passed where this is expected.
 */
export interface DispatchController {
  /** True once `abort()` was called. */
  readonly aborted: boolean;
  /** True while the response body is paused. */
  readonly paused: boolean;
  /** The reason given to `abort()`, or null. */
  readonly reason: Error | null;
  /** The response headers as received (a flat name/value list over HTTP/1.1), when known. */
  rawHeaders?: Buffer[] | string[] | IncomingHeaders | null;
  /** The response trailers as received, when known. */
  rawTrailers?: Buffer[] | string[] | IncomingHeaders | null;
  /** Aborts the request; the dispatcher then reports `reason` through `onResponseError`. */
  abort(reason: Error): void;
  /** Stops delivering response body chunks until `resume()`. */
  pause(): void;
  /** Delivers response body chunks again after `pause()`. */
  resume(): void;
}

/**
 * A handler of undici's controller-based API, the one API shared by undici 7 and 8. Every
 * method is optional. Structurally compatible with both majors' `Dispatcher.DispatchHandler`:
 * a class implementing it can be passed to `dispatch()` of an undici 7 or 8 dispatcher.
 */
export interface DispatchHandler {
  /** The request is about to be written; `controller` lives until the request ends. */
  onRequestStart?(controller: DispatchController, context: unknown): void;
  /** The connection was upgraded (`Upgrade` / `CONNECT`); the socket now belongs to the handler. */
  onRequestUpgrade?(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    socket: Duplex,
  ): void;
  /** Status and headers arrived (also for each 1xx informational response). */
  onResponseStart?(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    statusMessage?: string,
  ): void;
  /** A chunk of the response body; call `controller.pause()` to apply back-pressure. */
  onResponseData?(controller: DispatchController, chunk: Buffer): void;
  /** The response ended; `trailers` is empty when there were none. */
  onResponseEnd?(controller: DispatchController, trailers: IncomingHeaders): void;
  /**
   * The request failed or was aborted. Dispatchers pass a null controller when the request
   * failed before it started (e.g. a closed dispatcher).
   */
  onResponseError?(controller: DispatchController, error: Error): void;
  /** The first byte of the response arrived, before its headers were parsed. */
  onResponseStarted?(): void;
  /**
   * A chunk of the request body was written. Both majors pass the chunk at run time; undici 7's
   * type declarations describe `(chunkSize, totalBytesSent)`, hence the loose signature, which
   * keeps handlers typed against either major assignable to this one.
   */
  onBodySent?(chunk: Buffer | number, totalBytesSent?: number): void;
  /** The whole request body was written. */
  onRequestSent?(): void;
}

/**
 * The pre-controller handler API (`onConnect` / `onHeaders` / `onData` / `onComplete` /
 * `onError`). Node 24's global `fetch` (its bundled undici 7) and undici 7's `request()`,
 * `stream()` and `pipeline()` still pass handlers of this shape to `dispatcher.dispatch()`;
 * undici 8 dispatchers no longer accept them. {@link toControllerHandler} adapts them.
 */
export interface LegacyHandler {
  /** Called before the request is written; `abort` cancels it. */
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void;
  /** The first byte of the response arrived. */
  onResponseStarted?(): void;
  /**
   * Status and raw headers (flat `[name, value, name, value, ...]` list). Returning `false`
   * pauses the body until `resume` is called.
   */
  onHeaders?(
    statusCode: number,
    rawHeaders: Buffer[],
    resume: () => void,
    statusText: string,
  ): boolean | undefined;
  /** A chunk of the response body. Returning `false` pauses the body until `resume` is called. */
  onData?(chunk: Buffer): boolean | undefined;
  /** The response ended, with raw trailers (flat list, empty when none). */
  onComplete?(rawTrailers: Buffer[]): void;
  /** The request failed or was aborted. */
  onError?(error: Error): void;
  /** The connection was upgraded; raw headers as in `onHeaders`. */
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void;
  /** A chunk of the request body was written (see {@link DispatchHandler.onBodySent}). */
  onBodySent?(chunk: Buffer | number, totalBytesSent?: number): void;
  /** The whole request body was written. */
  onRequestSent?(): void;
}

/**
 * The dispatch options an interceptor can rely on with either undici major (structural, so
 * there is no type dependency on undici). Everything else undici accepts is carried through
 * the index signature.
 */
export interface DispatchOptions {
  origin?: string | URL | null;
  path: string;
  method: string;
  headers?: unknown;
  [key: string]: unknown;
}

/** A dispatch function: the next step of the chain an interceptor wraps. */
export type Dispatch = (options: DispatchOptions, handler: DispatchHandler) => boolean;

/**
 * An interceptor for `dispatcher.compose(...)`, typed to fit undici 7's and undici 8's
 * `compose` alike (their option and handler types differ in details; the run-time API is
 * shared).
 */
export type Interceptor = <D extends (options: never, handler: never) => boolean>(dispatch: D) => D;

/**
 * Types an interceptor written against this package's {@link Dispatch} as an
 * {@link Interceptor} that `compose()` of both undici majors accepts. It returns `fn` itself.
 *
 * @example
 * const tagged = asInterceptor((dispatch) => (opts, handler) =>
 *   dispatch(opts, toControllerHandler(handler)));
 * new Agent().compose(tagged);
 */
export const asInterceptor = (fn: (dispatch: Dispatch) => Dispatch): Interceptor =>
  fn as unknown as Interceptor;
