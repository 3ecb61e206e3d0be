// The handler/interceptor types shared by undici 7 and 8 live in @mesh/core; these
// aliases keep the names this package's modules (and its public `Interceptor`) use.
export {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type Interceptor,
} from "@mesh/core";
