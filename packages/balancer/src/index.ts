export { type Clock, monotonicClock } from "@mesh/core";
export {
  type AccrualMode,
  type AccrualState,
  FailureAccrual,
  type FailureAccrualConfig,
  type FailureAccrualOptions,
  failureAccrualConfig,
} from "./accrual/failure-accrual.js";
export { type DnsResolverOptions, dnsResolver } from "./discovery/dns-resolver.js";
export {
  type FileResolverOptions,
  fileResolver,
  parseEndpointsFile,
} from "./discovery/file-resolver.js";
export type { Resolver, ResolverUpdate } from "./discovery/resolver.js";
export { staticResolver } from "./discovery/static-resolver.js";
export { Balancer, type BalancerOptions, type BalancerSnapshot } from "./dispatcher/balancer.js";
export {
  type H2Connector,
  Http2Client,
  Http2ClientClosedError,
  type Http2ClientOptions,
  Http2StreamError,
} from "./dispatcher/h2-client.js";
export { type ParsedAddress, parseAddress } from "./endpoints/address.js";
export {
  Endpoint,
  type EndpointConnect,
  type EndpointInfo,
  type EndpointInit,
  endpointInfo,
  type ProtocolHint,
} from "./endpoints/endpoint.js";
export {
  EndpointSet,
  type EndpointSetOptions,
  type EndpointSnapshot,
  type ZoneSnapshot,
} from "./endpoints/endpoint-set.js";
export {
  BalancerClosedError,
  type BalancerErrorCode,
  balancerErrorCodes,
  EndpointOverloadedError,
  KubeApiError,
  NoEndpointsReadyError,
  ResolverError,
} from "./errors.js";
export type {
  EndpointEvent,
  EndpointState,
  FailFastEvent,
  ZoneEvent,
} from "./events.js";
export {
  FailureRate,
  type FailureRateConfig,
  type FailureRateOptions,
  failureRateConfig,
} from "./ewma/failure-rate.js";
export {
  PeakEwma,
  type PeakEwmaConfig,
  type PeakEwmaOptions,
  peakEwmaConfig,
} from "./ewma/peak-ewma.js";
export {
  type EndpointSliceObject,
  endpointsFromSlices,
  type PodObject,
  protocolOfAppProtocol,
  type ServiceObject,
  type SliceSelection,
  type SliceState,
} from "./kubernetes/endpoint-slices.js";
export {
  defaultKubeApi,
  inClusterKubeApi,
  KubeApiClient,
  type KubeApiConfig,
  kubeconfigKubeApi,
  SERVICE_ACCOUNT_DIR,
  type WatchEvent,
  type WatchStream,
} from "./kubernetes/kube-api.js";
export {
  KubernetesDiscovery,
  type KubernetesDiscoveryOptions,
  type KubernetesServiceHold,
  type KubernetesServiceRef,
  kubernetesResolver,
} from "./kubernetes/kubernetes-resolver.js";
export {
  ListWatch,
  type ListWatchOptions,
  type Named,
  realTimers,
  type Timers,
  type WatchBackoff,
} from "./kubernetes/list-watch.js";
export {
  type PushbackConfig,
  type PushbackOptions,
  pushbackConfig,
} from "./pushback/pushback.js";
export { type Random, seededRandom } from "./random.js";
export {
  createSelector,
  LeastPendingSelector,
  P2CSelector,
  RoundRobinSelector,
  type Selector,
  STRATEGIES,
  type Strategy,
} from "./select/selector.js";
export {
  type SplitBackend,
  TrafficSplit,
  type TrafficSplitOptions,
} from "./split/traffic-split.js";
export { WeightedChoice, type WeightedEntry } from "./split/weighted-choice.js";
