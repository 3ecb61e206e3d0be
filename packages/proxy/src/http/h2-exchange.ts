import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import http2 from "node:http2";

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  HTTP_STATUS_CONTINUE,
  HTTP_STATUS_EXPECTATION_FAILED,
  HTTP_STATUS_METHOD_NOT_ALLOWED,
  NGHTTP2_NO_ERROR,
} = http2.constants;

/** The exchange a stream carries, for the one shared `wantTrailers` listener. */
const EXCHANGE = Symbol("mesh.h2Exchange");

type ExchangeStream = http2.ServerHttp2Stream & { [EXCHANGE]?: H2Exchange };

/**
 * One HTTP/2 request and its response, served on node:http2's core stream API.
 *
 * It has the small part of the compatibility layer's `Http2ServerRequest` and
 * `Http2ServerResponse` the request pipeline uses, in one object that delegates to the
 * stream. The compatibility layer builds two stream objects per request, with their own
 * listeners and a header map copied on `writeHead`; on the proxy's hop between sidecars
 * that is work per request that carries nothing. Events (`data`, `end`, `error`, `close`,
 * `drain`) are the stream's own: a request body is read from the stream, and the
 * response's `close` is the stream's.
 */
export class H2Exchange {
  readonly httpVersionMajor = 2;
  readonly httpVersion = "2.0";
  /** `:method`. */
  readonly method: string;
  /** `:path` (path and query). */
  readonly url: string;
  /** Trailers to send once the body ended (see {@link addTrailers}); read by `sendTrailers`. */
  trailers: OutgoingHttpHeaders | undefined = undefined;
  private ended = false;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    /** The request headers as node:http2 parsed them, pseudo-headers included. */
    readonly headers: IncomingHttpHeaders,
    /** Names and values in arrival order, as `IncomingMessage.rawHeaders`. */
    readonly rawHeaders: string[],
  ) {
    this.method = headers[HTTP2_HEADER_METHOD] as string;
    this.url = headers[HTTP2_HEADER_PATH] as string;
  }

  // --- request side ---

  /** The request body ended (or there was none). */
  get readableEnded(): boolean {
    return this.stream.readableEnded;
  }

  /**
   * Whether the request arrived whole, as `IncomingMessage.complete`. node:http2 ends the
   * stream's readable side also when the client resets the stream or the connection drops
   * mid-body; that `end` is not the body's end. A stream cut short is `aborted` (the proxy
   * had not answered yet) or carries the reset's code.
   */
  get complete(): boolean {
    const { stream } = this;
    return !stream.aborted && (stream.rstCode === undefined || stream.rstCode === NGHTTP2_NO_ERROR);
  }

  /** The request has a body still to come. */
  get hasBody(): boolean {
    return !this.stream.endAfterHeaders && !this.stream.readableEnded;
  }

  resume(): this {
    this.stream.resume();
    return this;
  }

  pause(): this {
    this.stream.pause();
    return this;
  }

  on(event: string, listener: (...args: never[]) => void): this {
    this.stream.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  once(event: string, listener: (...args: never[]) => void): this {
    this.stream.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off(event: string, listener: (...args: never[]) => void): this {
    this.stream.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  // --- response side ---

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  /**
   * The proxy ended the response. Not the stream's `writableEnded`: node:http2 ends the
   * writable side itself when the client resets the stream, and a reset response must
   * still cancel its upstream request.
   */
  get writableEnded(): boolean {
    return this.ended;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  /**
   * Sends the response head (`headers` gains `:status`). Unless `trailers` is false, the
   * stream then waits for trailers at its end, as the compatibility layer's always does:
   * whatever {@link addTrailers} gave by then is sent (gRPC status), or an empty DATA frame
   * ends the stream. With `trailers: false` the last DATA frame ends it, which saves that
   * frame and two turns of the event loop; for responses that cannot have trailers.
   */
  writeHead(status: number, headers: OutgoingHttpHeaders, trailers = true): this {
    const stream = this.stream as ExchangeStream;
    if (stream.destroyed) return this;
    headers[HTTP2_HEADER_STATUS] = status;
    if (trailers) {
      stream[EXCHANGE] = this;
      // `on`, not `once` (a wrapper per request): a stream asks for its trailers once.
      stream.on("wantTrailers", sendTrailers);
    }
    stream.respond(headers, { waitForTrailers: trailers });
    return this;
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  /** Ends the response body (a no-op once ended: a HEAD or 204 answer ends with its head). */
  end(body?: string): this {
    this.ended = true;
    const stream = this.stream;
    if (stream.writableEnded || stream.destroyed) return this;
    if (body === undefined) stream.end();
    else stream.end(body);
    return this;
  }

  /** Trailers to send after the body. */
  addTrailers(trailers: OutgoingHttpHeaders): void {
    this.trailers = trailers;
  }

  /**
   * Answers with a head alone, one HEADERS frame with END_STREAM: gRPC's trailers-only
   * responses and the proxy's own refusals. Does nothing once a head went out or the
   * stream is gone.
   */
  respondHeadOnly(status: number, headers: OutgoingHttpHeaders): void {
    this.ended = true;
    respondHeadOnly(this.stream, status, headers);
  }
}

/** One HEADERS frame with END_STREAM, unless a head went out already or the stream is gone. */
function respondHeadOnly(
  stream: http2.ServerHttp2Stream,
  status: number,
  headers: OutgoingHttpHeaders,
): void {
  if (stream.headersSent || stream.destroyed) return;
  stream.respond({ [HTTP2_HEADER_STATUS]: status, ...headers }, { endStream: true });
}

/** Sent when the body ended without trailers (node:http2 then ends with an empty DATA frame). */
const NO_TRAILERS: OutgoingHttpHeaders = Object.freeze({});

function sendTrailers(this: ExchangeStream): void {
  const exchange = this[EXCHANGE];
  this[EXCHANGE] = undefined;
  if (this.destroyed) return;
  this.sendTrailers(exchange?.trailers ?? NO_TRAILERS);
}

function ignoreError(): void {}

/**
 * Serves a new stream of an HTTP/2 server: answers what the compatibility layer answers
 * itself (CONNECT 405, an unmet `expect` 417, `100-continue` at once) and hands every
 * other request to `handle` as an {@link H2Exchange}.
 */
export function serveStream(
  stream: http2.ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
  handle: (exchange: H2Exchange) => void,
): void {
  // A stream error (a reset, a dead session) is seen by the pipeline as 'close'; without
  // a listener it would be thrown.
  stream.on("error", ignoreError);
  if (headers[HTTP2_HEADER_METHOD] === "CONNECT") {
    respondHeadOnly(stream, HTTP_STATUS_METHOD_NOT_ALLOWED, {});
    return;
  }
  const expect = headers.expect;
  if (expect !== undefined) {
    if (expect.toLowerCase() !== "100-continue") {
      respondHeadOnly(stream, HTTP_STATUS_EXPECTATION_FAILED, {});
      return;
    }
    stream.additionalHeaders({ [HTTP2_HEADER_STATUS]: HTTP_STATUS_CONTINUE });
  }
  handle(new H2Exchange(stream, headers, rawHeaders));
}
