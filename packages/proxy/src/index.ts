/**
 * @mesh/proxy as a library: what an embedder needs to configure, start, reload and stop the
 * sidecar in its own process (`MeshProxy`), validate a config, branch on the proxy's error
 * codes, and run the CLI. The request path's internals are not part of the API.
 *
 * @packageDocumentation
 */
export { main, version } from "./cli/main.js";
export * from "./config/index.js";
export {
  PROXY_ERROR_HEADER,
  ProxyError,
  type ProxyErrorCode,
  proxyErrorCodes,
} from "./http/errors.js";
export { createLogger, type LogLevel, type ProxyLogger } from "./log.js";
export type { EndpointView } from "./outbound/backend.js";
export type { ServiceEndpoints } from "./outbound/outbound.js";
export { MeshProxy, type ProxyAddresses, type ProxyOptions } from "./proxy.js";
export type { TapEvent } from "./tap/event.js";
