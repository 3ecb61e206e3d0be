import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  GrpcStatus,
  isGrpcContentType,
  type OptionNames,
  optionsObject,
  typeError,
} from "@mesh/core";
import { GradientLimiter, type GradientLimiterOptions } from "../concurrency/gradient-limiter.js";
import { RateLimiter, type RateLimiterOptions } from "../rate/rate-limiter.js";

/** A node:http or node:http2 (compatibility API) request. */
export type ServerRequest = IncomingMessage | Http2ServerRequest;
/** A node:http or node:http2 (compatibility API) response. */
export type ServerResponseLike = ServerResponse | Http2ServerResponse;
/** A request handler of `http.createServer` / `http2.createServer`. */
export type RequestHandler<Req extends ServerRequest, Res extends ServerResponseLike> = (
  req: Req,
  res: Res,
) => void;

/** Options of {@link limitRequests}. At least one of `rateLimit`, `concurrency`. */
export interface LimitRequestsOptions<Req extends ServerRequest = ServerRequest> {
  /** Rate limits (a limiter, or its options). Refused: 429 + `retry-after`; gRPC RESOURCE_EXHAUSTED. */
  rateLimit?: RateLimiter | RateLimiterOptions;
  /** The key of a request for per-key limits (e.g. an authenticated client). Default: none. */
  key?: (req: Req) => string | undefined;
  /**
   * Adaptive concurrency (a limiter, its options, or `true` for the defaults). Refused:
   * 503; gRPC UNAVAILABLE (another replica may take it).
   */
  concurrency?: GradientLimiter | GradientLimiterOptions | true;
}

const names: OptionNames = {
  known: ["rateLimit", "key", "concurrency"],
  hints: { rate: "rateLimit", adaptiveConcurrency: "concurrency", limiter: "rateLimit" },
};

/**
 * Answers a refused request: HTTP gets `status` and a one-line body; gRPC gets a
 * trailers-only response (HTTP 200, `grpc-status`, `grpc-message`). `retryAfterMs` adds
 * `retry-after` (whole seconds, rounded up) and, for gRPC, `grpc-retry-pushback-ms`.
 */
export function refuse(
  req: ServerRequest,
  res: ServerResponseLike,
  status: 429 | 503,
  message: string,
  retryAfterMs?: number,
): void {
  if (res.headersSent) return;
  const headers: Record<string, string> = {};
  if (retryAfterMs !== undefined) {
    headers["retry-after"] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  }
  if (isGrpcContentType(req.headers["content-type"])) {
    headers["content-type"] = "application/grpc";
    headers["grpc-status"] = String(
      status === 429 ? GrpcStatus.RESOURCE_EXHAUSTED : GrpcStatus.UNAVAILABLE,
    );
    headers["grpc-message"] = encodeURIComponent(message);
    if (retryAfterMs !== undefined)
      headers["grpc-retry-pushback-ms"] = String(Math.ceil(retryAfterMs));
    const stream = (res as Http2ServerResponse).stream;
    if (stream !== undefined) {
      // Trailers-only: one HEADERS frame that ends the stream.
      if (!stream.headersSent && !stream.destroyed) {
        stream.respond({ ":status": 200, ...headers }, { endStream: true });
      }
    } else {
      (res as ServerResponse).writeHead(200, headers);
      res.end();
    }
  } else {
    const body = `${message}\n`;
    headers["content-type"] = "text/plain; charset=utf-8";
    headers["content-length"] = String(Buffer.byteLength(body));
    (res as ServerResponse).writeHead(status, headers);
    res.end(body);
  }
  // Discard whatever body the client still sends.
  req.resume();
}

/**
 * Wraps a `node:http` / `node:http2` request handler with inbound rate limits and adaptive
 * concurrency. Rate limits are checked first (a refused request costs no concurrency);
 * a request admitted by the concurrency limiter holds its slot until its response ends or
 * the client goes away, and its RTT (to the end of the response) feeds the limiter.
 *
 * @example
 * const server = http.createServer(
 *   limitRequests(app, { rateLimit: { total: { requestsPerSecond: 100 } }, concurrency: true }),
 * );
 */
export function limitRequests<Req extends ServerRequest, Res extends ServerResponseLike>(
  handler: RequestHandler<Req, Res>,
  options: LimitRequestsOptions<Req>,
): RequestHandler<Req, Res> {
  if (typeof handler !== "function") throw typeError("limitRequests", "a request handler", handler);
  const o = optionsObject<LimitRequestsOptions<Req>>("limitRequests", options, names);
  const rate =
    o.rateLimit === undefined
      ? undefined
      : o.rateLimit instanceof RateLimiter
        ? o.rateLimit
        : new RateLimiter(o.rateLimit);
  const concurrency =
    o.concurrency === undefined
      ? undefined
      : o.concurrency instanceof GradientLimiter
        ? o.concurrency
        : new GradientLimiter(o.concurrency === true ? undefined : o.concurrency);
  if (rate === undefined && concurrency === undefined) {
    throw typeError("limitRequests", "rateLimit or concurrency", options);
  }
  if (o.key !== undefined && typeof o.key !== "function") {
    throw typeError("limitRequests.key", "a function (req) => string | undefined", o.key);
  }
  const key = o.key;
  return (req: Req, res: Res): void => {
    if (rate !== undefined) {
      const r = rate.tryAcquire(key === undefined ? undefined : key(req));
      if (r < 0) {
        refuse(req, res, 429, `rate limited (${rate.rejectedBy} limit)`, -r);
        return;
      }
    }
    if (concurrency !== undefined) {
      const start = concurrency.tryAcquire();
      if (start < 0) {
        refuse(req, res, 503, "concurrency limit reached");
        return;
      }
      // 'close' follows both a finished response and a client that went away.
      res.once("close", () => concurrency.release(start, res.writableFinished));
    }
    handler(req, res);
  };
}
