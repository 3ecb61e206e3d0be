import type { Dispatcher } from "undici";

export type DispatchController = Dispatcher.DispatchController;
export type DispatchHandler = Dispatcher.DispatchHandler;
export type DispatchOptions = Dispatcher.DispatchOptions;
export type Dispatch = Dispatcher.Dispatch;
/**
 * An interceptor for `dispatcher.compose(...)`, typed to fit undici 7's and undici 8's
 * `compose` alike (their `DispatchOptions` types differ slightly; the runtime API is shared).
 */
export type Interceptor = <D extends (options: never, handler: never) => boolean>(dispatch: D) => D;

/** Types an interceptor written against undici 8's types as one that fits both majors. */
export const asInterceptor = (fn: (dispatch: Dispatch) => Dispatch): Interceptor =>
  fn as unknown as Interceptor;
export type IncomingHeaders = Record<string, string | string[] | undefined>;
