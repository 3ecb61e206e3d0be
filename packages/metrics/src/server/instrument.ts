import type { Server } from "node:http";
import type { Http2SecureServer, Http2Server } from "node:http2";
import type { TLSSocket } from "node:tls";
import { type Clock, monotonicClock, typeError } from "@mesh/core";
import type { SignalRecorder } from "../signals/golden-signals.js";
import type { Direction } from "../signals/labels.js";
import { ServerInstrumentation } from "./exchange.js";
import { trackHttp1 } from "./h1.js";
import { trackHttp2 } from "./h2.js";

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
  /**
   * Create server spans through `@opentelemetry/api` (default true). While no OTel SDK
   * tracer provider is registered this costs one check per request and nothing else.
   */
  trace?: boolean;
}

/** Anything {@link instrumentServer} accepts. */
export type InstrumentableServer = Server | Http2Server | Http2SecureServer;

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
  if (typeof options !== "object" || options === null)
    throw typeError("options", "an object", options);
  const signals = options.signals;
  if (typeof signals?.http !== "function") {
    throw typeError("options.signals", "a SignalRecorder (GoldenSignals or NOOP_SIGNALS)", signals);
  }
  const direction = options.direction ?? "inbound";
  if (direction !== "inbound" && direction !== "outbound") {
    throw typeError("options.direction", '"inbound" or "outbound"', direction);
  }
  if (options.route !== undefined && typeof options.route !== "function") {
    throw typeError("options.route", "a function", options.route);
  }
  if (options.clientId !== undefined && typeof options.clientId !== "function") {
    throw typeError("options.clientId", "a function", options.clientId);
  }
  const owner = new ServerInstrumentation(
    signals,
    direction,
    options.clock ?? monotonicClock,
    options.route,
    options.clientId ?? peerUriSan,
    options.trace ?? true,
  );
  // HTTP/1 (node:http, node:https, and an http2 server's allowHTTP1 fallback) is observed
  // through node:http's diagnostics channels. On an http2 server, adding a 'request' listener
  // would switch on Node's compatibility layer for every stream (which then also answers
  // 'wantTrailers', breaking gRPC servers), so h2 streams are observed on 'stream'.
  const detachH1 = trackHttp1(server, owner);
  const detachH2 = isHttp2(server) ? trackHttp2(server as Http2Server, owner) : undefined;
  return () => {
    detachH1();
    detachH2?.();
  };
}
