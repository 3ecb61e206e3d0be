import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Clock } from "@mesh/core";
import type { Span } from "@opentelemetry/api";
import { startServerSpan, tracerRegistered } from "../otel/trace.js";
import type { HttpSignals, SignalRecorder } from "../signals/golden-signals.js";
import type { Direction } from "../signals/labels.js";

/**
 * One request/response in flight on an instrumented server. Built per request, so its
 * properties are `declare`d and assigned in the constructor (plain stores) rather than
 * class fields, which would each be defined through a define-property IC first.
 */
export class ServerRequest {
  /** The ServerResponse (h1) or ServerHttp2Stream (h2) it belongs to. */
  declare readonly target: object;
  declare readonly handle: HttpSignals;
  declare readonly start: number;
  declare readonly clock: Clock;
  declare readonly span: Span | undefined;
  /** The response's own header-sending method, wrapped to take the time (the first exchange's is called). */
  declare readonly send: (...args: unknown[]) => unknown;
  /** Time to the response headers, or -1 until they are sent. */
  declare ttfb: number;
  /** Another instrumentation's exchange of the same HTTP/1 response or HTTP/2 stream, if any. */
  declare sibling: ServerRequest | undefined;

  constructor(
    target: object,
    handle: HttpSignals,
    start: number,
    clock: Clock,
    span: Span | undefined,
    send: (...args: unknown[]) => unknown,
  ) {
    this.target = target;
    this.handle = handle;
    this.start = start;
    this.clock = clock;
    this.span = span;
    this.send = send;
    this.ttfb = -1;
    this.sibling = undefined;
  }

  /** Latency to record: until the headers, or until now when none were sent. */
  latency(): number {
    return this.ttfb >= 0 ? this.ttfb : this.clock.now() - this.start;
  }
}

/** The label set last resolved on one connection: reused while authority and route repeat. */
export class LabelCache {
  authority: string | undefined = undefined;
  route: string | undefined = undefined;
  handle: HttpSignals | undefined = undefined;
  constructor(readonly owner: ServerInstrumentation) {}
}

/** One `instrumentServer` call's settings and per-request work shared by HTTP/1 and HTTP/2. */
export class ServerInstrumentation {
  constructor(
    readonly signals: SignalRecorder,
    readonly direction: Direction,
    readonly clock: Clock,
    readonly routeOf: ((method: string, path: string) => string | undefined) | undefined,
    readonly clientIdOf: (socket: TLSSocket) => string | undefined,
    readonly tracing: boolean,
  ) {}

  /** Counts the request and starts its exchange (and span, when an SDK records spans). */
  begin(
    labels: LabelCache,
    socket: Socket,
    target: object,
    send: (...args: unknown[]) => unknown,
    method: string,
    path: string,
    authority: string | undefined,
    headers: Record<string, unknown>,
  ): ServerRequest {
    const route = this.routeOf === undefined ? undefined : this.routeOf(method, path);
    let handle = labels.handle;
    if (handle === undefined || labels.authority !== authority || labels.route !== route) {
      handle = this.#resolve(socket, authority, route);
      labels.authority = authority;
      labels.route = route;
      labels.handle = handle;
    }
    handle.request();
    const span =
      this.tracing && tracerRegistered()
        ? startServerSpan(route === undefined ? method : `${method} ${route}`, headers, {
            "http.request.method": method,
            "url.path": path,
            ...(authority === undefined ? {} : { "server.address": authority }),
          })
        : undefined;
    return new ServerRequest(target, handle, this.clock.now(), this.clock, span, send);
  }

  #resolve(socket: Socket, authority: string | undefined, route: string | undefined) {
    const tls = (socket as TLSSocket | undefined)?.encrypted === true;
    return this.signals.http({
      direction: this.direction,
      authority,
      tls,
      clientId: tls ? this.clientIdOf(socket as TLSSocket) : undefined,
      route,
    });
  }
}
