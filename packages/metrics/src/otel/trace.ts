import {
  type Attributes,
  type Context,
  context,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { type Classification, classifyResponse } from "../classify/classify.js";

/** Instrumentation scope name used for spans and instruments. */
export const INSTRUMENTATION_NAME = "@mesh/metrics";

const tracer = trace.getTracer(INSTRUMENTATION_NAME);

// The API's global provider is a ProxyTracerProvider that delegates to this no-op provider
// until an SDK registers one.
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether an OpenTelemetry tracer provider (an SDK) is registered. Cheap enough to ask per
 * request, so the hot path skips span and attribute work while tracing cannot record, and
 * starts doing it as soon as an SDK registers. A provider from another copy of the API
 * counts as registered.
 */
export function tracerRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_PROVIDER;
}

/**
 * Starts a server span whose parent is the W3C `traceparent`/`tracestate` found in
 * `headers` (through the globally registered propagator). Returns `undefined` when no
 * OpenTelemetry SDK records it, so callers keep nothing alive.
 */
export function startServerSpan(
  name: string,
  headers: Record<string, unknown>,
  attributes: Attributes,
): Span | undefined {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return span.isRecording() ? span : undefined;
}

/**
 * Starts a client span under the active context. Returns `undefined` when not recording.
 * Use {@link injectTraceContext} to put it on the wire.
 */
export function startClientSpan(name: string, attributes: Attributes): Span | undefined {
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, context.active());
  return span.isRecording() ? span : undefined;
}

/**
 * The W3C trace-context headers (`traceparent`, `tracestate`) for `span` as the registered
 * propagator writes them, or `undefined` when no propagator is registered (incoming
 * headers then pass through untouched).
 */
export function injectTraceContext(span: Span | undefined): Record<string, string> | undefined {
  if (propagation.fields().length === 0) return undefined;
  const ctx: Context =
    span === undefined ? context.active() : trace.setSpan(context.active(), span);
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return Object.keys(carrier).length === 0 ? undefined : carrier;
}

/** Ends a span with the response's outcome: status attributes and ERROR on failure. */
export function endSpan(
  span: Span,
  status: number,
  grpcStatus: number,
  error?: unknown,
): Classification {
  if (status > 0) span.setAttribute("http.response.status_code", status);
  if (grpcStatus >= 0) span.setAttribute("rpc.grpc.status_code", grpcStatus);
  const c = error === undefined ? classifyResponse(status, grpcStatus) : "failure";
  if (c === "failure") {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      ...(error instanceof Error ? { message: error.message } : {}),
    });
  }
  span.end();
  return c;
}
