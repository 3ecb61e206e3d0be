export { type Clock, monotonicClock } from "@mesh/core";
export { type Classification, NO_GRPC_STATUS } from "./classify/classify.js";
export { MetricsError, type MetricsErrorCode, metricsErrorCodes } from "./errors.js";
export {
  COUNTED_MESH_CHANNELS,
  type MeshEventsOptions,
  subscribeMeshEvents,
  UNCOUNTED_MESH_CHANNELS,
} from "./mesh/subscribe.js";
export { bridgeToOpenTelemetry, otelInstrumentName } from "./otel/metrics.js";
export {
  endSpan,
  INSTRUMENTATION_NAME,
  injectTraceContext,
  startClientSpan,
  startServerSpan,
} from "./otel/trace.js";
export { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from "./prometheus/render.js";
export {
  type AnyFamily,
  CounterFamily,
  CounterSeries,
  type FamilyOptions,
  GaugeFamily,
  GaugeSeries,
  HistogramFamily,
  type HistogramOptions,
  HistogramSeries,
  type MetricType,
  type ObservationSink,
} from "./registry/family.js";
export { escapeLabelValue, LabelLimiter, type Labels } from "./registry/labels.js";
export { Registry } from "./registry/registry.js";
export {
  type InstrumentableServer,
  type InstrumentServerOptions,
  instrumentServer,
  peerUriSan,
} from "./server/instrument.js";
export { LATENCY_BUCKETS_MS } from "./signals/buckets.js";
export {
  GoldenSignals,
  type GoldenSignalsOptions,
  type HttpSignals,
  NOOP_SIGNALS,
  type SignalRecorder,
  type TcpSignals,
} from "./signals/golden-signals.js";
export type { Direction, HttpLabels, TcpLabels } from "./signals/labels.js";
export { quantile, type SignalsSnapshot, type Summary, snapshot, summarize } from "./summarize.js";
export {
  type Dispatch,
  type DispatchHandler,
  type DispatchOptions,
  type MetricsInterceptorOptions,
  metrics,
} from "./undici/interceptor.js";
