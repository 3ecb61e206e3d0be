import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { GrpcStatus, grpcStatusOf } from "@mesh/core";
import { timeout } from "@mesh/retry";
import type { Dispatcher } from "undici";
import { hasRequestBody, type IncomingRequest, RequestBody } from "./body.js";
import { classifyError, ProxyError, respondWithError } from "./errors.js";
import { encodeGrpcMessage } from "./grpc.js";
import { H2Exchange } from "./h2-exchange.js";
import { downstreamResponseHeaders, downstreamTrailers } from "./headers.js";
import { PROXY_RESET } from "./rapid-reset.js";

/** A client response, HTTP/1.1 or HTTP/2. */
export type OutgoingResponse = ServerResponse | H2Exchange;

/** One request to forward: where to, with which headers, and under which deadline. */
export interface ForwardRequest {
  req: IncomingRequest;
  res: OutgoingResponse;
  /** undici origin, e.g. `http://127.0.0.1:8080` (a Balancer may ignore it). */
  origin: string;
  method: string;
  /** Path and query. */
  path: string;
  /** Prepared upstream headers (see `upstreamRequestHeaders`). */
  headers: string[];
  /** The request is gRPC: errors become trailers-only responses. */
  grpc: boolean;
  /** Total time allowed, in ms, before the proxy answers 504 / DEADLINE_EXCEEDED. */
  timeoutMs?: number;
  /** Longest silence between response body chunks, in ms (0 = none). */
  idleTimeoutMs?: number;
  /** Ask the HTTP/1.1 client to close its connection after this response (draining). */
  closeConnection?: boolean;
  /**
   * The upstream speaks HTTP/1.x, so a response with `content-length` has no trailers
   * (they need chunked encoding): an HTTP/2 client's stream can end with the body.
   */
  http1Upstream?: boolean;
}

/** How a forwarded request ended, for metrics and the access log. */
export interface ForwardResult {
  /** HTTP status sent to the client (0 when the stream was reset mid-response). */
  status: number;
  /** gRPC status seen in response headers or trailers, if any. */
  grpcStatus?: number;
  /** The proxy-side failure, if any. */
  error?: ProxyError;
  /** performance.now() when response headers arrived from upstream (or the error was sent). */
  firstByteAt: number;
  /** Response body bytes sent to the client. */
  bytes: number;
  /**
   * The client reset the stream or closed its connection before the response ended: its
   * own choice (a cancelled call, a hedge it lost, a rapid-reset attacker), not a proxy or
   * upstream failure, so it is counted but not logged as a proxy error.
   */
  clientCancelled?: true;
}

/**
 * The one forwarding mechanism, used by both directions: dispatches the request on an
 * undici dispatcher and streams the response (status, headers, body, trailers) back to the
 * client with back-pressure both ways. Failures before the response starts become explicit
 * proxy errors (502/503/504 + `mesh-proxy-error`, or gRPC trailers-only); failures after it
 * started reset the client's stream. Never rejects.
 */
export function forward(dispatcher: Dispatcher, fr: ForwardRequest): Promise<ForwardResult> {
  return new Promise<ForwardResult>((resolve) => {
    new Forwarding(dispatcher, fr, resolve, undefined).start();
  });
}

/**
 * {@link forward} with a callback instead of a promise: the request pipeline's form, which
 * saves a promise and a microtask per request. `done` is called exactly once.
 */
export function forwardTo<T>(
  dispatcher: Dispatcher,
  fr: ForwardRequest,
  done: (result: ForwardResult, arg: T) => void,
  arg: T,
): void {
  new Forwarding(dispatcher, fr, done, arg).start();
}

/** The client reset its stream or closed its connection before the response ended. */
function clientGone(fr: ForwardRequest): boolean {
  if (fr.res instanceof H2Exchange) return fr.res.stream.destroyed || fr.res.stream.closed;
  // The request's socket: a pipelined response has none of its own until its turn.
  return (fr.req as { socket?: { destroyed: boolean } }).socket?.destroyed === true;
}

/**
 * Deadlines come from @mesh/retry's `timeout()`, composed outermost on the target's chain
 * once per dispatcher and idle setting (never per request): the request's own deadline
 * (the route's, or a shorter `grpc-timeout`) rides in its dispatch options.
 */
const timedDispatchers = new WeakMap<Dispatcher, Map<number, Dispatcher>>();
const deadlineOf = (opts: object): number | undefined =>
  (opts as { meshDeadlineMs?: number }).meshDeadlineMs;

/** `dispatcher` with `timeout()` outermost for idle limit `idle` ms (0 = none), cached. */
function withDeadlines(dispatcher: Dispatcher, idle: number): Dispatcher {
  let byIdle = timedDispatchers.get(dispatcher);
  if (byIdle === undefined) {
    byIdle = new Map();
    timedDispatchers.set(dispatcher, byIdle);
  }
  let timed = byIdle.get(idle);
  if (timed === undefined) {
    const options =
      idle > 0
        ? { deadline: deadlineOf, idle, name: "proxy" }
        : { deadline: deadlineOf, name: "proxy" };
    timed = dispatcher.compose(timeout(options) as Dispatcher.DispatcherComposeInterceptor);
    byIdle.set(idle, timed);
  }
  return timed;
}

class Forwarding<T = unknown> implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  /** Why the exchange was aborted, as the client's result reports it. */
  private abortReason: Error | undefined;
  /** What the layers below (retry, balancer, pool) are told; see {@link onClientClose}. */
  private upstreamAbort: Error | undefined;
  private done = false;
  /** The client went away before the response ended (see {@link ForwardResult.clientCancelled}). */
  private clientCancelled = false;
  private status = 0;
  private grpcStatus: number | undefined;
  private bytes = 0;
  private firstByteAt = 0;
  /** gRPC over HTTP/2: response head held back until the first data so trailers-only stays trailers-only. */
  private pendingHead: { status: number; headers: Record<string, string | string[]> } | undefined;
  private readonly h2: boolean;
  /** The client's body as the upstream reads it; stopped here when the exchange fails. */
  private body: RequestBody | null = null;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly fr: ForwardRequest,
    private readonly resolve: (r: ForwardResult, arg: T) => void,
    private readonly arg: T,
  ) {
    this.h2 = fr.res instanceof H2Exchange;
  }

  start(): void {
    const { fr } = this;
    if (clientGone(fr)) {
      // Reset (or disconnected) before the request was routed: it never reaches an app.
      this.abortReason = new ProxyError("MESH_PROXY_UPSTREAM_RESET", "client went away");
      this.clientCancelled = true;
      this.finish(this.abortReason as ProxyError);
      return;
    }
    fr.res.on("close", this.onClientClose);
    const body = hasRequestBody(fr.req) ? new RequestBody(fr.req) : null;
    this.body = body;
    const deadline = fr.timeoutMs !== undefined && fr.timeoutMs > 0 ? fr.timeoutMs : undefined;
    const idle = fr.idleTimeoutMs !== undefined && fr.idleTimeoutMs > 0 ? fr.idleTimeoutMs : 0;
    // One object shape for every request, with or without a deadline.
    const options: Dispatcher.DispatchOptions & { meshDeadlineMs: number | undefined } = {
      origin: fr.origin,
      method: fr.method as Dispatcher.HttpMethod,
      path: fr.path,
      headers: fr.headers,
      // undici takes any async iterable as a body; its types name only Readable.
      body: body as unknown as Readable | null,
      headersTimeout: 0,
      bodyTimeout: 0,
      meshDeadlineMs: deadline,
    };
    try {
      // No deadline and no idle limit: nothing for timeout() to do, so no layer to pass.
      const d =
        deadline === undefined && idle === 0
          ? this.dispatcher
          : withDeadlines(this.dispatcher, idle);
      d.dispatch(options, this);
    } catch (err) {
      this.fail(err);
    }
  }

  private readonly onClientClose = (): void => {
    if (this.done) return;
    // `writableEnded`, not `writableFinished`: a stream the client reset reports
    // `writableFinished` although nothing was ended, and the upstream request must be
    // cancelled exactly then.
    if (this.fr.res.writableEnded) return;
    // Below, a client going away is a plain abort: it says nothing about the endpoint, so the
    // balancer must not count it as an endpoint failure (32 clients hanging up at once would
    // otherwise eject a healthy endpoint).
    this.clientCancelled = true;
    this.abort(
      new ProxyError("MESH_PROXY_UPSTREAM_RESET", "client went away"),
      new DOMException("client went away", "AbortError"),
    );
  };

  private abort(reason: Error, upstream: Error = reason): void {
    if (this.done) return;
    if (this.abortReason === undefined) {
      this.abortReason = reason;
      this.upstreamAbort = upstream;
    }
    if (this.controller !== undefined) this.controller.abort(this.upstreamAbort as Error);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.upstreamAbort !== undefined) controller.abort(this.upstreamAbort);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (this.done) return;
    this.firstByteAt = performance.now();
    this.status = statusCode;
    this.grpcStatus = grpcStatusOf(headers);
    const out = downstreamResponseHeaders(headers);
    if (this.fr.closeConnection && !this.h2) out.connection = "close";
    if (this.fr.grpc && this.h2) {
      this.pendingHead = { status: statusCode, headers: out };
    } else if (this.h2) {
      const trailers = !this.fr.http1Upstream || headers["content-length"] === undefined;
      (this.fr.res as H2Exchange).writeHead(statusCode, out, trailers);
    } else {
      (this.fr.res as ServerResponse).writeHead(statusCode, out);
    }
  }

  private flushHead(): void {
    const head = this.pendingHead;
    if (head === undefined) return;
    this.pendingHead = undefined;
    (this.fr.res as ServerResponse).writeHead(head.status, head.headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    this.flushHead();
    this.bytes += chunk.length;
    if (!(this.fr.res as ServerResponse).write(chunk)) {
      controller.pause();
      this.fr.res.once("drain", () => controller.resume());
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.done) return;
    const res = this.fr.res;
    const t = downstreamTrailers(trailers);
    const trailerStatus = grpcStatusOf(trailers);
    if (trailerStatus !== undefined) this.grpcStatus = trailerStatus;
    const head = this.pendingHead;
    if (head !== undefined && t === undefined) {
      // Trailers-only gRPC response: keep it a single HEADERS frame with END_STREAM.
      this.pendingHead = undefined;
      (res as H2Exchange).respondHeadOnly(head.status, head.headers);
    } else {
      this.flushHead();
      if (t !== undefined) res.addTrailers(t);
      res.end();
    }
    this.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.fail(this.abortReason ?? err);
  }

  private fail(err: unknown): void {
    if (this.done) return;
    const error = classifyError(err);
    const res = this.fr.res;
    if (this.pendingHead !== undefined && error.code === "MESH_PROXY_TIMEOUT") {
      // gRPC response held back: the deadline can still be reported properly.
      this.pendingHead = undefined;
    }
    if (!res.headersSent && this.pendingHead === undefined) {
      if (!res.destroyed) {
        respondWithError(
          res,
          error,
          this.fr.grpc,
          this.fr.closeConnection || (hasRequestBody(this.fr.req) && !this.fr.req.readableEnded),
        );
      }
      this.status = this.fr.grpc ? 200 : error.status;
      if (this.fr.grpc) this.grpcStatus = error.grpcStatus;
      this.firstByteAt = performance.now();
    } else if (this.fr.grpc && this.h2 && error.code === "MESH_PROXY_TIMEOUT" && !res.destroyed) {
      // Mid-stream gRPC deadline: end the stream with the status instead of a reset.
      this.flushHead();
      res.addTrailers({
        "grpc-status": String(GrpcStatus.DEADLINE_EXCEEDED),
        "grpc-message": encodeGrpcMessage(error.reason),
      });
      res.end();
      this.grpcStatus = GrpcStatus.DEADLINE_EXCEEDED;
    } else {
      // The response already started: the only honest signal left is a reset.
      this.pendingHead = undefined;
      if (res instanceof H2Exchange) {
        const stream = res.stream;
        (stream as { [PROXY_RESET]?: boolean })[PROXY_RESET] = true;
        stream.close(2 /* INTERNAL_ERROR */);
      } else (res as ServerResponse).destroy();
    }
    this.finish(error);
  }

  private finish(error?: ProxyError): void {
    this.done = true;
    this.fr.res.off("close", this.onClientClose);
    // undici cannot cancel an async iterable body it is waiting on (a Readable it would
    // destroy): a failed exchange lets go of the client's body here.
    if (error !== undefined) this.body?.return();
    const result: ForwardResult = {
      status: this.status,
      firstByteAt: this.firstByteAt,
      bytes: this.bytes,
    };
    if (this.grpcStatus !== undefined) result.grpcStatus = this.grpcStatus;
    if (error !== undefined) result.error = error;
    if (this.clientCancelled) result.clientCancelled = true;
    this.resolve(result, this.arg);
  }
}
