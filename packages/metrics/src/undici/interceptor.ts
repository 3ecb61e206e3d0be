import type { Duplex } from "node:stream";
import {
  addHeader,
  type Clock,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type LegacyHandler,
  monotonicClock,
  toControllerHandler,
  typeError,
  type UndiciHeaders,
} from "@mesh/core";
import type { Span } from "@opentelemetry/api";
import { grpcStatusIn, NO_GRPC_STATUS } from "../classify/classify.js";
import { endSpan, injectTraceContext, startClientSpan, tracerRegistered } from "../otel/trace.js";
import type { HttpSignals, SignalRecorder } from "../signals/golden-signals.js";
import type { Direction } from "../signals/labels.js";

// The handler and options types shared by undici 7 and 8 come from @mesh/core and are
// re-exported under the names this package has always exported.
export type { DispatchHandler, DispatchOptions } from "@mesh/core";

/** undici's `dispatch` function shape. */
// biome-ignore lint/suspicious/noExplicitAny: undici majors type their options/handler differently; this keeps `compose()` accepting the interceptor under both.
export type Dispatch = (options: any, handler: any) => boolean;

/** Options of the {@link metrics} interceptor. */
export interface MetricsInterceptorOptions {
  /** Where to record (a `GoldenSignals`, or `NOOP_SIGNALS` to switch recording off). */
  signals: SignalRecorder;
  /** Label `direction` (default `outbound`). */
  direction?: Direction;
  /** Time source for latency (default `performance.now()`). */
  clock?: Clock;
  /** Route label for a request (called per request; keep it cheap). */
  route?: (options: DispatchOptions) => string | undefined;
  /** Label `backend` for every request through this dispatcher. */
  backend?: string;
  /** Label `server_id`, the expected server identity, for every request. */
  serverId?: string;
  /**
   * Create client spans and inject `traceparent`/`tracestate` via `@opentelemetry/api`
   * (default true). Without a registered tracer provider no span is started, and headers
   * are only injected when a propagator is registered.
   */
  trace?: boolean;
}

const MAX_CACHED_ORIGINS = 1024;

/**
 * Forwards every callback to the next handler and records the exchange once it ends.
 * Plain properties, not `#private` class fields: one of these is built per request, and
 * each field definition went through a define-property IC (~800 instructions per request
 * under callgrind in the bench proxy) where plain stores are in-object writes.
 */
class MetricsHandler implements DispatchHandler {
  // `declare`: no class-field definitions; the constructor's plain stores give every
  // instance the same shape.
  declare readonly next: DispatchHandler;
  declare readonly signals: HttpSignals;
  declare readonly clock: Clock;
  declare readonly span: Span | undefined;
  declare readonly start: number;
  declare status: number;
  declare grpc: number;
  declare ttfb: number;

  constructor(next: DispatchHandler, signals: HttpSignals, clock: Clock, span: Span | undefined) {
    this.next = next;
    this.signals = signals;
    this.clock = clock;
    this.span = span;
    this.start = clock.now();
    this.status = 0;
    this.grpc = NO_GRPC_STATUS;
    this.ttfb = -1;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.next.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    socket: Duplex,
  ): void {
    this.status = statusCode;
    this.signals.response(statusCode, NO_GRPC_STATUS, this.clock.now() - this.start);
    this.next.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStarted(): void {
    this.next.onResponseStarted?.();
  }

  onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: IncomingHeaders,
    statusMessage?: string,
  ): void {
    this.status = statusCode;
    this.grpc = grpcStatusIn(headers);
    this.next.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (this.ttfb < 0) this.ttfb = this.clock.now() - this.start;
    this.next.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatchController, trailers: IncomingHeaders): void {
    const fromTrailers = grpcStatusIn(trailers);
    if (fromTrailers !== NO_GRPC_STATUS) this.grpc = fromTrailers;
    const latency = this.ttfb >= 0 ? this.ttfb : this.clock.now() - this.start;
    this.signals.response(this.status, this.grpc, latency);
    if (this.span !== undefined) endSpan(this.span, this.status, this.grpc);
    this.next.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatchController, error: Error): void {
    const latency = this.ttfb >= 0 ? this.ttfb : this.clock.now() - this.start;
    this.signals.streamError(latency, this.status);
    if (this.span !== undefined) endSpan(this.span, this.status, this.grpc, error);
    this.next.onResponseError?.(controller, error);
  }

  onBodySent(chunk: Buffer | number, totalBytesSent?: number): void {
    this.next.onBodySent?.(chunk, totalBytesSent);
  }

  onRequestSent(): void {
    this.next.onRequestSent?.();
  }
}

/** `options` with the trace-context headers added (repeated headers and the shape kept). */
function withHeaders(options: DispatchOptions, extra: Record<string, string>): DispatchOptions {
  let headers = options.headers as UndiciHeaders;
  for (const name in extra) headers = addHeader(headers, name, extra[name] as string);
  return { ...options, headers };
}

/**
 * An undici interceptor recording client-side golden signals (`request_total`,
 * `response_total`, `response_latency_ms` as time to the first body byte, or to the end
 * when there is no body). Works with undici 7 and 8 dispatchers
 * (`new Agent().compose(metrics({ signals }))`), including global `fetch` via
 * `setGlobalDispatcher` from the matching major. Label sets are resolved once per origin.
 *
 * Composed outermost it sees each logical request once; composed inside a retry
 * interceptor it records every attempt.
 */
export function metrics(
  options: MetricsInterceptorOptions,
): (dispatch: Dispatch, boundOrigin?: string | null) => Dispatch {
  if (typeof options !== "object" || options === null)
    throw typeError("options", "an object", options);
  const signals = options.signals;
  if (typeof signals?.http !== "function") {
    throw typeError("options.signals", "a SignalRecorder (GoldenSignals or NOOP_SIGNALS)", signals);
  }
  const direction = options.direction ?? "outbound";
  if (direction !== "inbound" && direction !== "outbound") {
    throw typeError("options.direction", '"inbound" or "outbound"', direction);
  }
  if (options.route !== undefined && typeof options.route !== "function") {
    throw typeError("options.route", "a function", options.route);
  }
  const clock = options.clock ?? monotonicClock;
  const routeOf = options.route;
  const tracing = options.trace ?? true;
  const byOrigin = new Map<string, HttpSignals>();
  // A dispatcher usually talks to one origin: remember the last one to skip the map.
  let lastKey = "";
  let lastHandle: HttpSignals | undefined;

  const resolve = (origin: string, route: string | undefined): HttpSignals => {
    const key = route === undefined ? origin : `${origin}\n${route}`;
    if (key === lastKey && lastHandle !== undefined) return lastHandle;
    let h = byOrigin.get(key);
    if (h === undefined) {
      let authority: string | undefined;
      let tls = false;
      try {
        const u = new URL(origin);
        authority = u.host;
        tls = u.protocol === "https:";
      } catch {
        authority = undefined;
      }
      h = signals.http({
        direction,
        authority,
        tls,
        serverId: options.serverId,
        route,
        backend: options.backend,
      });
      if (byOrigin.size >= MAX_CACHED_ORIGINS) byOrigin.clear();
      byOrigin.set(key, h);
    }
    lastKey = key;
    lastHandle = h;
    return h;
  };

  // undici 8's compose() passes the origin of a dispatcher bound to one (Pool, Client): every
  // request then goes there, so its handle is resolved once here instead of comparing
  // `opts.origin` per request (compose hands each request a freshly built origin string).
  return (dispatch, boundOrigin?: string | null) => {
    const bound = typeof boundOrigin === "string" ? boundOrigin : undefined;
    const boundHandle =
      bound !== undefined && routeOf === undefined ? resolve(bound, undefined) : undefined;
    return (opts: DispatchOptions, handler: DispatchHandler | LegacyHandler) => {
      let origin: string;
      let h: HttpSignals;
      if (boundHandle !== undefined) {
        origin = bound!;
        h = boundHandle;
      } else {
        const o = opts.origin;
        origin = bound ?? (o == null ? "" : typeof o === "string" ? o : o.origin);
        h = resolve(origin, routeOf === undefined ? undefined : routeOf(opts));
      }
      h.request();
      let span: Span | undefined;
      if (tracing) {
        if (tracerRegistered()) {
          span = startClientSpan(opts.method, {
            "http.request.method": opts.method,
            "url.full": origin + opts.path,
          });
        }
        const carrier = injectTraceContext(span);
        if (carrier !== undefined) opts = withHeaders(opts, carrier);
      }
      // Outermost under Node's global fetch, the handler is a legacy one: adapt it, or nothing
      // above would ever hear back.
      const downstream = toControllerHandler(handler);
      return dispatch(opts, new MetricsHandler(downstream, h, clock, span));
    };
  };
}
