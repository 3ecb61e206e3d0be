export { allMeshChannels, type MeshChannelName, meshChannels } from "./channels/channels.js";
export { isUnobserved, runUnobserved } from "./channels/unobserved.js";
export { type Clock, monotonicClock } from "./clock/clock.js";
export { isMeshError, MeshError } from "./errors/mesh-error.js";
export {
  GrpcStatus,
  type GrpcStatusName,
  grpcStatusNames,
  grpcStatusOf,
  grpcStatusOfHttp,
  isGrpcContentType,
  MAX_GRPC_STATUS,
  type ParsedHeaders,
  parseGrpcStatus,
  readGrpcStatus,
} from "./grpc/status.js";
export {
  addHeader,
  forEachHeader,
  getHeader,
  getHeaderValues,
  type HeaderVisitor,
  hasHeader,
  isHeaderName,
  removeHeader,
  removeHeaderInPlace,
  type TakenHeader,
  takeHeader,
  type UndiciHeaders,
} from "./headers/headers.js";
export { parseGrpcPushback, parseRetryAfter, pushbackMs } from "./headers/pushback.js";
export {
  inClusterServer,
  SERVICE_ACCOUNT_DIR,
  type ServiceAccountFiles,
  serviceAccountFiles,
} from "./kubernetes/in-cluster.js";
export { isControllerHandler, toControllerHandler } from "./legacy/to-controller-handler.js";
export {
  CALLER_ERROR_CODES,
  ENDPOINT_FAILURE_GRPC_STATUSES,
  endpointHealth,
  type Outcome,
  OutcomeRule,
  type OutcomeRuleSpec,
  RETRYABLE_ERROR_CODES,
  RETRYABLE_GRPC_STATUSES,
  responseSuccess,
  retryable,
} from "./outcome/outcome.js";
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
export { rangeError, typeError } from "./validate/errors.js";
export { type OptionNames, optionsObject, suggest } from "./validate/options.js";
export { show } from "./validate/show.js";
export {
  bool,
  clockOption,
  duration,
  integerIn,
  MAX_TIMER_MS,
  nonEmptyString,
  numberIn,
  randomOption,
} from "./validate/values.js";
