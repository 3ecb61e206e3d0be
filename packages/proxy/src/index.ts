export { AdminServer, type AdminSource } from "./admin/admin.js";
export { main, version } from "./cli/main.js";
export * from "./config/index.js";
export {
  classifyError,
  PROXY_ERROR_HEADER,
  ProxyError,
  type ProxyErrorCode,
  respondWithError,
} from "./http/errors.js";
export {
  type ForwardRequest,
  type ForwardResult,
  forward,
  type OutgoingResponse,
} from "./http/forward.js";
export { formatGrpcTimeout, parseGrpcTimeout } from "./http/grpc.js";
export { HttpListener, type HttpListenerOptions, type RequestHandler } from "./http/listener.js";
export { Inbound, type InboundDeps } from "./inbound/inbound.js";
export { createLogger, type LogLevel, type ProxyLogger } from "./log.js";
export { ProxyMetrics } from "./metrics/proxy-metrics.js";
export type { EndpointView } from "./outbound/backend.js";
export { Outbound, type OutboundDeps, type ServiceEndpoints } from "./outbound/outbound.js";
export { type RouteDecision, RouteTable } from "./outbound/router.js";
export { MeshProxy, type ProxyAddresses, type ProxyOptions } from "./proxy.js";
export type { TapEvent } from "./tap/event.js";
export { type TapFilter, tapMatches } from "./tap/filter.js";
