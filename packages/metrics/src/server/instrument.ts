import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from "node:http";
import type {
  Http2SecureServer,
  Http2Server,
  IncomingHttpHeaders,
  ServerHttp2Stream,
} from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Span } from "@opentelemetry/api";
import { grpcStatusOf, NO_GRPC_STATUS } from "../classify/classify.js";
import { type Clock, monotonicClock } from "../clock.js";
import { typeError } from "../errors.js";
import { endSpan, startServerSpan } from "../otel/trace.js";
import type { HttpSignals, SignalRecorder } from "../signals/golden-signals.js";
import type { Direction } from "../signals/labels.js";

/** Options of {@link instrumentServer}. */
export interface InstrumentServerOptions {
  /** Where to record (a `GoldenSignals`, or `NOOP_SIGNALS` to switch recording off). */
  signals: SignalRecorder;
  /** Label `direction` (default `inbound`). */
  direction?: Direction;
  /** Time source for latency (default `performance.now()`). */
  clock?: Clock;
  /** Route label for a request, e.g. from a router's match. Called once per request. */
  route?: (method: string, path: string) => string | undefined;
  /**
   * The client identity of a TLS connection (label `client_id`). Default: the peer
   * certificate's first `URI:` subject alternative name (a SPIFFE ID).
   */
  clientId?: (socket: TLSSocket) => string | undefined;
  /** Create server spans through `@opentelemetry/api` (default true; no-ops without an SDK). */
  trace?: boolean;
}

/** Anything {@link instrumentServer} accepts. */
export type InstrumentableServer = Server | Http2Server | Http2SecureServer;

interface Exchange {
  readonly handle: HttpSignals;
  readonly start: number;
  ttfb: number;
  readonly span: Span | undefined;
  readonly clock: Clock;
}

interface ConnectionLabels {
  authority: string | undefined;
  route: string | undefined;
  handle: HttpSignals;
}

const kExchange = Symbol("mesh.metrics.exchange");
type WithExchange = { [kExchange]?: Exchange };

/** The first `URI:` SAN of the peer certificate, the SPIFFE ID in a mesh. */
export function peerUriSan(socket: TLSSocket): string | undefined {
  const san = socket.getPeerCertificate?.()?.subjectaltname;
  if (typeof san !== "string") return undefined;
  for (const part of san.split(", ")) if (part.startsWith("URI:")) return part.slice(4);
  return undefined;
}

function isHttp2(server: InstrumentableServer): server is Http2Server | Http2SecureServer {
  return typeof (server as Http2Server).updateSettings === "function";
}

// h1: writeHead is where headers are committed (write/end call it via _implicitHeader).
function timedWriteHead(this: ServerResponse & WithExchange, ...args: unknown[]) {
  const x = this[kExchange];
  if (x !== undefined && x.ttfb < 0) x.ttfb = x.clock.now() - x.start;
  return (Object.getPrototypeOf(this).writeHead as (...a: unknown[]) => ServerResponse).apply(
    this,
    args,
  );
}

function onH1Close(this: ServerResponse & WithExchange) {
  const x = this[kExchange];
  if (x === undefined) return;
  this[kExchange] = undefined;
  const grpc = grpcStatusOf(this.getHeaders() as OutgoingHttpHeaders as never);
  const latency = x.ttfb >= 0 ? x.ttfb : x.clock.now() - x.start;
  if (this.writableFinished) {
    x.handle.response(this.statusCode, grpc, latency);
    if (x.span !== undefined) endSpan(x.span, this.statusCode, grpc);
  } else {
    const status = this.headersSent ? this.statusCode : 0;
    x.handle.streamError(latency, status);
    if (x.span !== undefined) endSpan(x.span, status, grpc, new Error("response aborted"));
  }
}

// h2: respond() sends the response headers.
function timedRespond(this: ServerHttp2Stream & WithExchange, ...args: unknown[]) {
  const x = this[kExchange];
  if (x !== undefined && x.ttfb < 0) x.ttfb = x.clock.now() - x.start;
  return (Object.getPrototypeOf(this).respond as (...a: unknown[]) => void).apply(this, args);
}

function onH2Close(this: ServerHttp2Stream & WithExchange) {
  const x = this[kExchange];
  if (x === undefined) return;
  this[kExchange] = undefined;
  const sent = this.sentHeaders as IncomingHttpHeaders | undefined;
  const status = Number(sent?.[":status"] ?? 0);
  let grpc = grpcStatusOf(this.sentTrailers as never);
  if (grpc === NO_GRPC_STATUS) grpc = grpcStatusOf(sent as never);
  const latency = x.ttfb >= 0 ? x.ttfb : x.clock.now() - x.start;
  // NO_ERROR (0) is a clean end; any other code means the stream was reset.
  if (this.rstCode === 0 && status > 0) {
    x.handle.response(status, grpc, latency);
    if (x.span !== undefined) endSpan(x.span, status, grpc);
  } else {
    x.handle.streamError(latency, status);
    if (x.span !== undefined)
      endSpan(x.span, status, grpc, new Error(`stream reset ${this.rstCode}`));
  }
}

/**
 * Records server-side golden signals for a `node:http`, `node:https`, `node:http2` (h2c or
 * TLS, incl. gRPC servers built on it) server: `request_total`, `response_total`
 * classified from the status, the gRPC status in headers or trailers, or a reset stream,
 * and `response_latency_ms` as the time until response headers are sent. Also starts a
 * server span per request (child of the incoming `traceparent`) when an OTel SDK is set.
 *
 * Label sets are resolved once per connection and authority. Returns a function that
 * removes the instrumentation (requests in flight are still recorded).
 */
export function instrumentServer(
  server: InstrumentableServer,
  options: InstrumentServerOptions,
): () => void {
  if (typeof options !== "object" || options === null) typeError("options", "an object", options);
  const signals = options.signals;
  if (typeof signals?.http !== "function") {
    typeError("options.signals", "a SignalRecorder (GoldenSignals or NOOP_SIGNALS)", signals);
  }
  const direction = options.direction ?? "inbound";
  if (direction !== "inbound" && direction !== "outbound") {
    typeError("options.direction", '"inbound" or "outbound"', direction);
  }
  const clock = options.clock ?? monotonicClock;
  const routeOf = options.route;
  const clientIdOf = options.clientId ?? peerUriSan;
  const tracing = options.trace ?? true;
  const perConnection = new WeakMap<Socket, ConnectionLabels>();

  const handleFor = (socket: Socket, authority: string | undefined, route: string | undefined) => {
    const cached = perConnection.get(socket);
    if (cached !== undefined && cached.authority === authority && cached.route === route) {
      return cached.handle;
    }
    const tls = (socket as TLSSocket).encrypted === true;
    const handle = signals.http({
      direction,
      authority,
      tls,
      clientId: tls ? clientIdOf(socket as TLSSocket) : undefined,
      route,
    });
    perConnection.set(socket, { authority, route, handle });
    return handle;
  };

  const begin = (
    socket: Socket,
    method: string,
    path: string,
    authority: string | undefined,
    headers: Record<string, unknown>,
  ): Exchange => {
    const route = routeOf === undefined ? undefined : routeOf(method, path);
    const handle = handleFor(socket, authority, route);
    handle.request();
    const span = tracing
      ? startServerSpan(route === undefined ? method : `${method} ${route}`, headers, {
          "http.request.method": method,
          "url.path": path,
          ...(authority === undefined ? {} : { "server.address": authority }),
        })
      : undefined;
    return { handle, start: clock.now(), ttfb: -1, span, clock };
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersionMajor === 2) return; // counted on 'stream'
    const x = begin(req.socket, req.method ?? "GET", req.url ?? "/", req.headers.host, req.headers);
    const r = res as ServerResponse & WithExchange;
    r[kExchange] = x;
    r.writeHead = timedWriteHead as ServerResponse["writeHead"];
    res.once("close", onH1Close);
  };

  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const x = begin(
      stream.session?.socket as Socket,
      String(headers[":method"] ?? "GET"),
      String(headers[":path"] ?? "/"),
      headers[":authority"],
      headers,
    );
    const s = stream as ServerHttp2Stream & WithExchange;
    s[kExchange] = x;
    s.respond = timedRespond as ServerHttp2Stream["respond"];
    stream.once("close", onH2Close);
  };

  const h2 = isHttp2(server);
  const emitter = server as Server;
  // On an http2 server, adding a 'request' listener switches on Node's compatibility layer
  // for every stream (which then also answers 'wantTrailers', breaking gRPC servers), so
  // listen there only when the app already uses it (HTTP/1 fallback via allowHTTP1).
  const h1 = !h2 || emitter.listenerCount("request") > 0;
  if (h1) emitter.prependListener("request", onRequest);
  if (h2) (server as Http2Server).prependListener("stream", onStream);
  return () => {
    if (h1) emitter.removeListener("request", onRequest);
    if (h2) (server as Http2Server).removeListener("stream", onStream);
  };
}
