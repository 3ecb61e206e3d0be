export { isControllerHandler, toControllerHandler } from "./legacy/to-controller-handler.js";
export {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type Interceptor,
  type LegacyHandler,
} from "./types.js";
