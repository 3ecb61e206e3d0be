import type { IncomingHttpHeaders } from "node:http";
import { type ClientHttp2Session, type ClientHttp2Stream, connect, constants } from "node:http2";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { Readable } from "node:stream";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import {
  duration,
  forEachHeader,
  integerIn,
  type OptionNames,
  optionsObject,
  toControllerHandler,
  type UndiciHeaders,
} from "@mesh/core";
import { Dispatcher } from "undici";
import { destroyArgs, promiseOrCallback } from "./lifecycle.js";

/** Opens the transport of a session: a connected socket (TLS with ALPN `h2`, or plain TCP). */
export type H2Connector = (
  params: { hostname: string; host: string; port: string; protocol: string; servername?: string },
  callback: (err: Error | null, socket: Socket | null) => void,
) => void;

/** Options of {@link Http2Client}. */
export interface Http2ClientOptions {
  /**
   * How to open the socket: a connector function (undici's signature, e.g. an mTLS
   * connector), or `node:tls` options (`ca`, `cert`, `key`, `servername`, …) for an
   * `https:` origin. Default: TLS with ALPN `h2` for `https:`, plain TCP (h2c with prior
   * knowledge) for `http:`.
   */
  connect?: H2Connector | ConnectionOptions | undefined;
  /** Connect (and TLS handshake) timeout of the built-in connectors, ms. Default 10 000. */
  connectTimeout?: number | undefined;
  /** Receive window per stream, bytes (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB. */
  streamWindow?: number | undefined;
  /** Receive window of the whole connection, bytes. Default 8 MiB. */
  connectionWindow?: number | undefined;
  /**
   * Liveness of the connection: an HTTP/2 PING every `intervalMs` (default 10 000); a PING
   * not acknowledged within `timeoutMs` (default 5 000) closes the connection, failing its
   * streams, so a peer that vanished without a FIN is noticed in seconds rather than at the
   * kernel's TCP timeout. TCP keep-alive is switched on with the same interval. `false`
   * turns both off.
   */
  keepAlive?: { intervalMs?: number; timeoutMs?: number } | false | undefined;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);
const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = constants;
/** Errors of `session.request()` that mean "not on this session", not "bad request". */
const SESSION_GONE = new Set([
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_OUT_OF_STREAMS",
]);

/** What an exchange needs from its client; a private object, so none of it is public API. */
interface H2RequestOwner {
  readonly scheme: string;
  readonly authority: string;
  readonly destroyed: boolean;
  /** An exchange finished (either way). */
  done(exchange: H2Request): void;
  /** Sends an exchange again on the next session. */
  requeue(exchange: H2Request): void;
  /** Stops using a session for new streams. */
  retire(session: ClientHttp2Session): void;
}

const http2ClientOptionNames: OptionNames = {
  known: ["connect", "connectTimeout", "streamWindow", "connectionWindow", "keepAlive"],
  hints: {
    timeout: "connectTimeout",
    connectTimeoutMs: "connectTimeout",
    initialWindowSize: "streamWindow",
    pingInterval: "keepAlive.intervalMs",
    keepAliveTimeout: "keepAlive",
  },
};
const keepAliveOptionNames: OptionNames = { known: ["intervalMs", "timeoutMs"] };
/** Largest HTTP/2 window (RFC 9113 §6.9.1). */
const MAX_WINDOW = 2 ** 31 - 1;

/** A stream ended, or the connection went away, before the response completed. */
export class Http2StreamError extends Error {
  /** Node's code for HTTP/2 stream failures, which the proxy maps to a reset (502). */
  readonly code = "ERR_HTTP2_STREAM_ERROR";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "Http2StreamError";
  }
}

/** The dispatcher is closed or destroyed. */
export class Http2ClientClosedError extends Error {
  readonly code = "UND_ERR_CLOSED";
  constructor(message = "HTTP/2 client is closed") {
    super(message);
    this.name = "Http2ClientClosedError";
  }
}

/**
 * A request header block being built in node:http2's raw form, a flat
 * `[name, value, …]` list: `session.request()` takes it as is, where a header object
 * would be copied and walked again inside node:http2.
 */
interface RawBlock {
  list: string[];
  /** Entries written to `list`. */
  n: number;
  /** The last `host` header's value: it becomes `:authority`. */
  authority: string | undefined;
  /** Whether the client asked for `te: trailers`. */
  teTrailers: boolean;
}

/**
 * Adds one request field line: `host` becomes `:authority`, hop-by-hop ones are dropped;
 * repeated names stay separate field lines, in order.
 */
function addLine(rawName: string, value: string, block: RawBlock): void {
  const name = rawName.toLowerCase();
  if (name === "host") {
    block.authority = value;
    return;
  }
  if (HOP_BY_HOP.has(name)) return;
  if (name === "te") {
    if (value.toLowerCase() === "trailers") block.teTrailers = true;
    return;
  }
  block.list[block.n++] = name;
  block.list[block.n++] = value;
}

/**
 * Request headers in any form undici accepts, as an HTTP/2 header block in node:http2's
 * raw form (pseudo-headers first, `:authority` last so a `host` header can set it).
 */
function h2Headers(
  opts: Dispatcher.DispatchOptions,
  scheme: string,
  defaultAuthority: string,
): string[] {
  const h = opts.headers as unknown;
  const flat = Array.isArray(h);
  // Sized for a flat list up front (6 pseudo-header entries, `te`, `:authority`): the list
  // is built without growing.
  const list: string[] = new Array(flat ? h.length + 10 : 16);
  list[0] = ":method";
  list[1] = opts.method;
  list[2] = ":path";
  list[3] = opts.path;
  list[4] = ":scheme";
  list[5] = scheme;
  const block: RawBlock = { list, n: 6, authority: undefined, teTrailers: false };
  forEachHeader(h as UndiciHeaders, addLine, block);
  let n = block.n;
  if (block.teTrailers) {
    list[n++] = "te";
    list[n++] = "trailers";
  }
  list[n++] = ":authority";
  list[n++] = block.authority ?? defaultAuthority;
  list.length = n;
  return list;
}

type Body = Dispatcher.DispatchOptions["body"];

/** A body that can be sent again after a refused stream (nothing of it was consumed). */
function replayable(body: Body): boolean {
  return (
    body === null || body === undefined || typeof body === "string" || body instanceof Uint8Array
  );
}

const kExchange = Symbol("mesh.h2.exchange");
type ExchangeStream = ClientHttp2Stream & { [kExchange]?: H2Request };

// Stream listeners shared by every exchange (no closures per request).
function onStreamResponse(this: ExchangeStream, headers: IncomingHttpHeaders): void {
  this[kExchange]?.onResponse(headers);
}
function onStreamData(this: ExchangeStream, chunk: Buffer): void {
  this[kExchange]?.onData(chunk);
}
function onStreamTrailers(this: ExchangeStream, trailers: IncomingHttpHeaders): void {
  this[kExchange]?.onTrailers(trailers);
}
function onStreamEnd(this: ExchangeStream): void {
  this[kExchange]?.onEnd();
}
function onStreamError(this: ExchangeStream, err: Error): void {
  this[kExchange]?.onError(err);
}
function onStreamClose(this: ExchangeStream): void {
  this[kExchange]?.onClose(this);
}

/** One request on the wire: the handler's controller and the stream's lifecycle. */
class H2Request implements Dispatcher.DispatchController {
  #stream: ClientHttp2Stream | undefined;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  #settled = false;
  #responded = false;
  #trailers: IncomingHttpHeaders = {};
  #bodyStarted = false;
  #ended = false;
  #error: Error | undefined;
  #started = false;
  /** Stops the request body's pump and destroys the body, if one is streaming. */
  #stopBody: (() => void) | undefined;

  constructor(
    readonly client: H2RequestOwner,
    readonly opts: Dispatcher.DispatchOptions,
    readonly handler: Dispatcher.DispatchHandler,
  ) {}

  get aborted(): boolean {
    return this.#aborted;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }

  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#responded) this.#stream?.resume();
  }

  abort(reason: Error): void {
    if (this.#aborted || this.#settled) return;
    this.#aborted = true;
    this.#reason = reason;
    const stream = this.#stream;
    if (stream !== undefined && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.fail(reason);
  }

  /**
   * The session is connected and the request is about to be written. Called again only
   * when a refused stream is re-sent; the handler hears `onRequestStart` once.
   */
  start(session: ClientHttp2Session): void {
    if (this.#settled) return;
    if (!this.#started) {
      this.#started = true;
      this.handler.onRequestStart?.(this, {});
      if (this.#aborted || this.#settled) return;
    }
    const body = this.opts.body;
    const hasBody = body !== null && body !== undefined;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(h2Headers(this.opts, this.client.scheme, this.client.authority), {
        endStream: !hasBody,
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === "string" && SESSION_GONE.has(code)) {
        // The session is closing or out of stream ids: a fresh session can take it.
        this.client.retire(session);
        this.client.requeue(this);
      } else {
        // The request itself is bad (e.g. an invalid header): no session would take it.
        this.fail(err as Error);
      }
      return;
    }
    this.#stream = stream;
    (stream as ExchangeStream)[kExchange] = this;
    stream.pause(); // nothing flows until the response head is delivered
    // Each of these fires at most once per stream and the stream is this request's alone,
    // so plain listeners do: `once` would allocate a wrapper per listener per request.
    stream.on("response", onStreamResponse);
    stream.on("trailers", onStreamTrailers);
    stream.on("end", onStreamEnd);
    stream.on("close", onStreamClose);
    stream.on("error", onStreamError);
    if (hasBody) this.#sendBody(stream, body);
    else this.handler.onRequestSent?.();
  }

  #sendBody(stream: ClientHttp2Stream, body: NonNullable<Body>): void {
    if (typeof body === "string" || body instanceof Uint8Array) {
      stream.end(body);
      this.handler.onRequestSent?.();
      return;
    }
    this.#bodyStarted = true;
    if (body instanceof Readable) this.#pipeReadable(stream, body);
    else this.#pumpIterable(stream, body as unknown as AsyncIterable<Uint8Array | string>);
  }

  /**
   * An async iterable body (e.g. a retry layer's recording, replayable per attempt) written
   * chunk by chunk as the stream takes it. Not wrapped in `Readable.from`: that adds a
   * stream, its read-ahead and a promise chain per request for what is mostly one chunk.
   */
  #pumpIterable(stream: ClientHttp2Stream, body: AsyncIterable<Uint8Array | string>): void {
    let iterator: AsyncIterator<Uint8Array | string>;
    try {
      iterator = body[Symbol.asyncIterator]();
    } catch (err) {
      this.abort(err as Error);
      return;
    }
    let stopped = false;
    const step = (): void => {
      try {
        iterator.next().then(onNext, onError);
      } catch (err) {
        onError(err);
      }
    };
    const onNext = (result: IteratorResult<Uint8Array | string>): void => {
      if (stopped) return;
      try {
        if (result.done) {
          stopped = true;
          this.#stopBody = undefined;
          stream.end();
          this.handler.onRequestSent?.();
        } else if (stream.write(result.value)) step();
        else stream.once("drain", step);
      } catch (err) {
        onError(err);
      }
    };
    const onError = (err: unknown): void => {
      if (stopped) return;
      stopped = true;
      this.#stopBody = undefined;
      this.abort(err instanceof Error ? err : new Error(String(err)));
    };
    // The exchange ended first: let the producer go (no error: nobody may be listening).
    this.#stopBody = () => {
      stopped = true;
      stream.off("drain", step);
      iterator.return?.()?.catch(() => {});
    };
    step();
  }

  #pipeReadable(stream: ClientHttp2Stream, source: Readable): void {
    const onData = (chunk: Buffer) => {
      if (!stream.write(chunk)) source.pause();
    };
    const onDrain = () => source.resume();
    const cleanup = () => {
      source.off("data", onData);
      source.off("end", onEnd);
      source.off("error", onSourceError);
      stream.off("drain", onDrain);
    };
    const onEnd = () => {
      cleanup();
      this.#stopBody = undefined;
      stream.end();
      this.handler.onRequestSent?.();
    };
    const onSourceError = (err: Error) => {
      cleanup();
      this.#stopBody = undefined;
      this.abort(err);
    };
    // When the exchange ends first the body is destroyed, so its producer stops. Without an
    // error: nobody may be listening for one, and an unhandled 'error' would crash the process.
    this.#stopBody = () => {
      cleanup();
      if (!source.destroyed) source.destroy();
    };
    source.on("data", onData);
    source.once("end", onEnd);
    source.once("error", onSourceError);
    stream.on("drain", onDrain);
  }

  /** @internal */
  onResponse(headers: IncomingHttpHeaders & { ":status"?: number }): void {
    if (this.#settled) return;
    const status = Number(headers[":status"]);
    delete headers[":status"];
    this.#responded = true;
    this.handler.onResponseStart?.(this, status, headers, "");
    if (this.#settled) return;
    const stream = this.#stream as ClientHttp2Stream;
    stream.on("data", onStreamData);
    if (!this.#paused) stream.resume();
  }

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.#settled) return;
    this.handler.onResponseData?.(this, chunk);
  }

  /** @internal Trailers are kept until 'end': DATA that arrived before them may still be buffered. */
  onTrailers(trailers: IncomingHttpHeaders): void {
    this.#trailers = trailers;
  }

  /** @internal The body was read to its end; 'close' tells whether the stream ended cleanly. */
  onEnd(): void {
    this.#ended = true;
  }

  /** @internal */
  onError(err: Error): void {
    this.#error ??= err;
  }

  /**
   * @internal The stream closed: the response is complete only if its body was read to the
   * end and the stream was not reset (a reset also ends the readable side).
   */
  onClose(stream: ClientHttp2Stream): void {
    if (this.#settled || stream !== this.#stream) return;
    const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
    if (this.#responded && this.#ended && code === NGHTTP2_NO_ERROR) {
      // An answer before the whole body was sent (e.g. 413): the rest is not needed.
      this.#settle();
      this.handler.onResponseEnd?.(this, this.#trailers);
      return;
    }
    if (
      code === NGHTTP2_REFUSED_STREAM &&
      !this.#responded &&
      !this.#bodyStarted &&
      replayable(this.opts.body) &&
      !this.client.destroyed
    ) {
      // The peer refused the stream before processing it (e.g. a GOAWAY raced the request):
      // safe to send again, on a fresh connection.
      (stream as ExchangeStream)[kExchange] = undefined;
      this.#stream = undefined;
      this.#error = undefined;
      if (stream.session !== undefined) this.client.retire(stream.session as ClientHttp2Session);
      this.client.requeue(this);
      return;
    }
    const err = this.#error;
    this.fail(
      new Http2StreamError(
        `HTTP/2 stream to ${this.client.authority} closed before the response ${this.#responded ? "ended" : "started"}${code !== NGHTTP2_NO_ERROR ? ` (RST_STREAM code ${code})` : ""}${err ? `: ${err.message}` : ""}`,
        err === undefined ? undefined : { cause: err },
      ),
    );
  }

  /** Ends the exchange with an error (once). */
  fail(err: Error): void {
    if (this.#settled) return;
    this.#settle();
    this.handler.onResponseError?.(this, err);
  }

  /**
   * Marks the exchange finished: stops a body still streaming, unlinks the exchange from its
   * stream and frees its client slot.
   *
   * The unlinking is for the garbage collector: node:http2 keeps a client stream alive
   * through every young-generation GC until the next full one, so whatever the stream still
   * references is promoted to the old generation with it. Linked, that was the whole
   * request (this exchange, its handler chain, the client's request and response): ~7 KB
   * per request on a proxy's outbound, which filled the old generation and forced a
   * mark-compact every few seconds at 1000 req/s.
   */
  #settle(): void {
    this.#settled = true;
    if (this.#stream !== undefined) (this.#stream as ExchangeStream)[kExchange] = undefined;
    const stopBody = this.#stopBody;
    this.#stopBody = undefined;
    stopBody?.();
    this.client.done(this);
  }
}

/**
 * An undici `Dispatcher` over one multiplexed HTTP/2 connection, built on node:http2.
 *
 * Why not undici's own HTTP/2 client: in undici 8.13 a response whose DATA is still
 * buffered in the stream when its trailers arrive loses that DATA (the data listener is
 * removed on 'trailers'), which under load turns gRPC replies into empty OK responses.
 * This client completes a response when the stream closes cleanly after its 'end' (every
 * byte delivered; a reset is a failure) and takes the trailers from the 'trailers' event. It also opens larger flow-control
 * windows (1 MiB per stream, 8 MiB per connection) than HTTP/2's 64 KiB default, which
 * caps a streaming response at one window per round trip.
 *
 * Streams beyond the peer's SETTINGS_MAX_CONCURRENT_STREAMS wait in nghttp2's queue.
 * A stream the peer refuses before processing (REFUSED_STREAM, e.g. racing a GOAWAY) is
 * sent again on a new connection when its body can be replayed. After a GOAWAY the
 * connection finishes its streams and new requests open a new one.
 */
export class Http2Client extends Dispatcher {
  readonly origin: URL;
  /** `:scheme` of requests. */
  readonly scheme: string;
  /** Default `:authority` (a `host` header overrides it). */
  readonly authority: string;
  private session: ClientHttp2Session | undefined;
  private connecting = false;
  private queue: H2Request[] = [];
  private readonly active = new Set<H2Request>();
  private isClosed = false;
  private isDestroyed = false;
  private closeWaiters: Array<() => void> = [];
  private readonly connector: H2Connector;
  private readonly streamWindow: number;
  private readonly connectionWindow: number;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  readonly #owner: H2RequestOwner;

  /**
   * @throws TypeError/RangeError naming the option (`http2Client.streamWindow: …`) for an
   * unknown option or a value out of range.
   */
  constructor(origin: string | URL, options?: Http2ClientOptions) {
    super();
    const o = optionsObject("http2Client", options, http2ClientOptionNames);
    this.origin = new URL(origin);
    this.scheme = this.origin.protocol === "https:" ? "https" : "http";
    this.authority = this.origin.host;
    const timeout = duration("http2Client.connectTimeout", o.connectTimeout, 10_000, 1);
    const c = o.connect;
    if (c !== undefined && typeof c !== "function" && (typeof c !== "object" || c === null))
      throw new TypeError(
        `http2Client.connect: expected a connector function or node:tls options, got ${typeof c}`,
      );
    this.connector =
      typeof c === "function"
        ? c
        : this.scheme === "https"
          ? tlsConnector(c ?? {}, timeout)
          : tcpConnector(timeout);
    this.streamWindow = integerIn(
      "http2Client.streamWindow",
      o.streamWindow,
      1 << 20,
      65_535,
      MAX_WINDOW,
    );
    this.connectionWindow = integerIn(
      "http2Client.connectionWindow",
      o.connectionWindow,
      8 << 20,
      65_535,
      MAX_WINDOW,
    );
    const ka = o.keepAlive;
    if (ka === false) {
      this.pingIntervalMs = 0;
      this.pingTimeoutMs = 0;
    } else {
      const k = optionsObject("http2Client.keepAlive", ka, keepAliveOptionNames);
      this.pingIntervalMs = duration("http2Client.keepAlive.intervalMs", k.intervalMs, 10_000, 1);
      this.pingTimeoutMs = duration("http2Client.keepAlive.timeoutMs", k.timeoutMs, 5_000, 1);
    }
    const client = this;
    this.#owner = {
      scheme: this.scheme,
      authority: this.authority,
      get destroyed() {
        return client.isDestroyed;
      },
      done: (exchange) => this.#done(exchange),
      requeue: (exchange) => this.#requeue(exchange),
      retire: (session) => this.#retire(session),
    };
  }

  /** True once `close()` or `destroy()` was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** True once `destroy()` was called. */
  get destroyed(): boolean {
    return this.isDestroyed;
  }

  /** Requests in flight or waiting for the connection (a queued one is also active). */
  get pending(): number {
    return this.active.size;
  }

  override dispatch(
    opts: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): boolean {
    // Node's global fetch and other undici 7 callers pass a legacy handler.
    const exchange = new H2Request(this.#owner, opts, toControllerHandler(handler));
    if (opts.upgrade) {
      const err = new Http2StreamError(
        `${this.authority}: upgrade/CONNECT is not supported over HTTP/2 here`,
      );
      queueMicrotask(() => exchange.fail(err));
      return false;
    }
    if (this.isClosed) {
      queueMicrotask(() => exchange.fail(new Http2ClientClosedError()));
      return false;
    }
    this.active.add(exchange);
    const session = this.session;
    if (usable(session)) {
      exchange.start(session);
    } else {
      this.queue.push(exchange);
      this.ensureSession();
    }
    return true;
  }

  #done(exchange: H2Request): void {
    this.active.delete(exchange);
    const i = this.queue.indexOf(exchange);
    if (i !== -1) this.queue.splice(i, 1);
    if (this.isClosed && this.active.size === 0) this.finishClose();
  }

  #requeue(exchange: H2Request): void {
    this.queue.push(exchange);
    this.ensureSession();
  }

  #retire(session: ClientHttp2Session): void {
    if (this.session === session) this.session = undefined;
    if (!session.closed && !session.destroyed) session.close();
  }

  private ensureSession(): void {
    const current = this.session;
    if (usable(current)) {
      this.startQueued(current);
      return;
    }
    if (this.connecting || this.isDestroyed) return;
    this.connecting = true;
    this.session = undefined;
    const { hostname, port, protocol } = this.origin;
    const failQueued = (error: Error) => {
      this.connecting = false;
      for (const e of this.queue.splice(0)) e.fail(error);
    };
    try {
      this.connector(
        {
          hostname: hostname.replace(/^\[|\]$/g, ""),
          host: this.origin.host,
          port: port || (protocol === "https:" ? "443" : "80"),
          protocol,
        },
        (err, socket) => {
          if (err !== null || socket === null) {
            failQueued(err ?? new Http2StreamError(`could not connect to ${this.authority}`));
            return;
          }
          if (this.isDestroyed) {
            socket.destroy();
            failQueued(new Http2ClientClosedError());
            return;
          }
          const alpn = (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol;
          if (this.scheme === "https" && alpn !== "h2") {
            socket.destroy();
            failQueued(
              new Http2StreamError(
                `${this.authority} did not negotiate HTTP/2 via ALPN (got ${alpn || "none"})`,
              ),
            );
            return;
          }
          this.openSession(socket);
        },
      );
    } catch (err) {
      // A connector that throws (e.g. identity not ready) fails these requests, not the client.
      failQueued(err as Error);
    }
  }

  private openSession(socket: Socket): void {
    const session = connect(this.origin, {
      createConnection: () => socket,
      settings: { initialWindowSize: this.streamWindow, enablePush: false },
    });
    this.session = session;
    this.connecting = false;
    session.on("error", () => {}); // streams report their own failures
    session.once("connect", () => {
      try {
        session.setLocalWindowSize(this.connectionWindow);
      } catch {
        // the session may already be closing; streams report that
      }
    });
    const stopPings = this.keepAlive(session, socket);
    const retire = () => {
      if (this.session === session) this.session = undefined;
      if (this.queue.length > 0 && !this.isDestroyed) this.ensureSession();
    };
    session.once("goaway", retire);
    session.once("close", () => {
      stopPings();
      retire();
    });
    this.startQueued(session);
  }

  /** PINGs the peer every interval; a PING left unanswered closes the session. */
  private keepAlive(session: ClientHttp2Session, socket: Socket): () => void {
    const interval = this.pingIntervalMs;
    if (interval <= 0) return () => {};
    socket.setKeepAlive(true, interval);
    let deadline: NodeJS.Timeout | undefined;
    const timer = setInterval(() => {
      if (deadline !== undefined || session.closed || session.destroyed) return;
      deadline = setTimeout(() => {
        session.destroy(
          new Http2StreamError(
            `${this.authority} did not answer an HTTP/2 PING within ${this.pingTimeoutMs} ms`,
          ),
        );
      }, this.pingTimeoutMs);
      deadline.unref();
      try {
        session.ping(() => {
          clearTimeout(deadline);
          deadline = undefined;
        });
      } catch {
        // the session is closing: its 'close' stops the pings
      }
    }, interval);
    timer.unref();
    return () => {
      clearInterval(timer);
      if (deadline !== undefined) clearTimeout(deadline);
    };
  }

  private startQueued(session: ClientHttp2Session): void {
    const queued = this.queue.splice(0);
    for (const e of queued) e.start(session);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.isClosed = true;
    const promise = new Promise<void>((resolve) => {
      if (this.active.size === 0) {
        this.finishClose();
        resolve();
      } else this.closeWaiters.push(resolve);
    });
    return promiseOrCallback(promise, callback);
  }

  private finishClose(): void {
    const session = this.session;
    this.session = undefined;
    if (session !== undefined && !session.closed) session.close();
    for (const w of this.closeWaiters.splice(0)) w();
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(
    errOrCallback?: Error | null | (() => void),
    callbackArg?: () => void,
  ): Promise<void> | void {
    const { err, callback } = destroyArgs(errOrCallback, callbackArg);
    const error = err ?? new Http2ClientClosedError("HTTP/2 client was destroyed");
    this.isClosed = true;
    this.isDestroyed = true;
    // Taken first: failing the last exchange would otherwise run finishClose(), whose
    // graceful close() leaves the streams in flight open.
    const session = this.session;
    this.session = undefined;
    for (const e of [...this.active]) e.fail(error);
    session?.destroy();
    for (const w of this.closeWaiters.splice(0)) w();
    return promiseOrCallback(Promise.resolve(), callback);
  }
}

/** A session new streams may go on: open, not closing, not destroyed. */
function usable(session: ClientHttp2Session | undefined): session is ClientHttp2Session {
  return session !== undefined && !session.closed && !session.destroyed;
}

/** Calls back once with the socket when `ready` fires, or with the first error or a timeout. */
function whenReady(
  socket: Socket,
  ready: "connect" | "secureConnect",
  target: string,
  timeoutMs: number,
  callback: (err: Error | null, socket: Socket | null) => void,
): void {
  const timer = setTimeout(() => {
    socket.destroy(
      Object.assign(new Error(`connect to ${target} timed out after ${timeoutMs} ms`), {
        code: "UND_ERR_CONNECT_TIMEOUT",
      }),
    );
  }, timeoutMs);
  const onError = (err: Error) => {
    clearTimeout(timer);
    callback(err, null);
  };
  socket.once("error", onError);
  socket.once(ready, () => {
    clearTimeout(timer);
    socket.off("error", onError);
    callback(null, socket);
  });
}

/** Plain TCP for h2c (prior knowledge), with Nagle off. */
function tcpConnector(timeoutMs: number): H2Connector {
  return (params, callback) => {
    const socket = netConnect({ host: params.hostname, port: Number(params.port), noDelay: true });
    whenReady(socket, "connect", params.host, timeoutMs, callback);
  };
}

/** TLS offering only ALPN `h2`, with the caller's `node:tls` options (CA, client cert, SNI). */
function tlsConnector(options: ConnectionOptions, timeoutMs: number): H2Connector {
  return (params, callback) => {
    const socket = tlsConnect({
      ...(isIP(params.hostname) === 0 ? { servername: params.hostname } : {}),
      ...options,
      host: params.hostname,
      port: Number(params.port),
      ALPNProtocols: ["h2"],
    });
    socket.setNoDelay(true);
    whenReady(socket, "secureConnect", params.host, timeoutMs, callback);
  };
}
