import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";
import type { ProxyLogger } from "../log.js";
import type { HttpLabels, ProxyMetrics } from "../metrics/proxy-metrics.js";
import { hasRequestBody, type IncomingRequest } from "./body.js";
import { classifyError, ProxyError, respondWithError } from "./errors.js";
import { forward, type OutgoingResponse } from "./forward.js";
import { isGrpcContentType, parseGrpcTimeout } from "./grpc.js";
import { upstreamRequestHeaders, viaContains } from "./headers.js";

/** What a direction resolved a request to. */
export interface Target {
  dispatcher: Dispatcher;
  /** undici origin of the dispatch. */
  origin: string;
  /** Request deadline in ms (the `grpc-timeout` header can shorten it). */
  timeoutMs?: number | undefined;
  /** Longest silence between response chunks, ms. */
  idleTimeoutMs?: number | undefined;
  /** Metric labels (direction and authority are filled in). */
  route?: string | undefined;
  backend?: string | undefined;
}

/** The request facts a direction routes on. */
export interface RouteInput {
  method: string;
  /** Lower-cased authority (`host` or `host:port`), "" when absent. */
  authority: string;
  /** Path and query. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The client speaks HTTP/2. */
  h2: boolean;
  grpc: boolean;
}

/** Per-direction settings and state of the request pipeline. */
export interface DirectionContext {
  direction: "inbound" | "outbound";
  /** This proxy's name in `via` for this direction. */
  pseudonym: string;
  /** Load-shedding threshold (read per request, so reloads apply). */
  maxConcurrentRequests(): number;
  logger: ProxyLogger;
  accessLog: boolean;
  metrics: ProxyMetrics;
  /** True while shutting down (HTTP/1.1 responses ask for `connection: close`). */
  draining(): boolean;
  /** Routes a request, or throws a {@link ProxyError}. */
  resolve(input: RouteInput): Target;
}

/**
 * The request pipeline shared by inbound and outbound: loop protection, load shedding,
 * header hygiene, routing, deadline (`grpc-timeout` honoured), forwarding, metrics and
 * logs. Returns a request handler for {@link HttpListener}.
 */
export function createRequestPipeline(ctx: DirectionContext): {
  handle(req: IncomingRequest, res: OutgoingResponse): void;
  inFlight(): number;
} {
  let inFlight = 0;
  const handle = (req: IncomingRequest, res: OutgoingResponse): void => {
    const start = performance.now();
    const h2 = req.httpVersionMajor === 2;
    const grpc = isGrpcContentType(req.headers["content-type"]);
    const method = req.method ?? "GET";
    const prepared = upstreamRequestHeaders(
      req.rawHeaders,
      req.headers,
      `${h2 ? "2" : req.httpVersion} ${ctx.pseudonym}`,
    );
    let authority = prepared.authority;
    let path = req.url ?? "/";
    let headers = prepared.headers;
    if (!h2 && path.charCodeAt(0) !== 47 /* '/' */ && path !== "*") {
      // absolute-form (HTTP_PROXY): the URL names the authority.
      try {
        const url = new URL(path);
        if (url.protocol !== "http:") throw new Error("scheme");
        authority = url.host.toLowerCase();
        path = `${url.pathname}${url.search}`;
        headers = replaceHost(headers, url.host);
      } catch {
        reject(
          req,
          res,
          ctx,
          start,
          grpc,
          method,
          authority,
          path,
          new ProxyError("MESH_PROXY_BAD_REQUEST", "unsupported request target"),
        );
        return;
      }
    }
    if (viaContains(req.headers.via, ctx.pseudonym)) {
      reject(
        req,
        res,
        ctx,
        start,
        grpc,
        method,
        authority,
        path,
        new ProxyError("MESH_PROXY_LOOP"),
      );
      return;
    }
    if (inFlight >= ctx.maxConcurrentRequests()) {
      reject(
        req,
        res,
        ctx,
        start,
        grpc,
        method,
        authority,
        path,
        new ProxyError("MESH_PROXY_LOAD_SHED"),
      );
      return;
    }
    let target: Target;
    try {
      target = ctx.resolve({ method, authority, path, headers: req.headers, h2, grpc });
    } catch (err) {
      reject(req, res, ctx, start, grpc, method, authority, path, classifyError(err));
      return;
    }
    let timeoutMs = target.timeoutMs;
    if (grpc) {
      const deadline = parseGrpcTimeout(req.headers["grpc-timeout"]);
      if (deadline !== undefined && (timeoutMs === undefined || deadline < timeoutMs))
        timeoutMs = deadline;
    }
    const labels: HttpLabels = {
      direction: ctx.direction,
      authority,
      route: target.route,
      backend: target.backend,
    };
    const signals = ctx.metrics.http(labels);
    signals.request();
    inFlight++;
    forward(target.dispatcher, {
      req,
      res,
      origin: target.origin,
      method,
      path,
      headers,
      grpc,
      timeoutMs,
      idleTimeoutMs: target.idleTimeoutMs,
      closeConnection: ctx.draining(),
    }).then((result) => {
      inFlight--;
      const latency = (result.firstByteAt || performance.now()) - start;
      if (result.status === 0) signals.streamError(latency);
      else signals.response(result.status, result.grpcStatus ?? -1, latency);
      if (result.error !== undefined) {
        ctx.logger.warn(
          {
            direction: ctx.direction,
            method,
            authority,
            path,
            error: result.error.reason,
            cause: causeOf(result.error),
            status: result.status,
            grpcStatus: result.grpcStatus,
            route: target.route,
            backend: target.backend,
          },
          "proxy error",
        );
      }
      if (ctx.accessLog) {
        ctx.logger.info(
          {
            access: true,
            direction: ctx.direction,
            method,
            authority,
            path,
            status: result.status,
            grpcStatus: result.grpcStatus,
            bytes: result.bytes,
            durationMs: Math.round((performance.now() - start) * 1000) / 1000,
            route: target.route,
            backend: target.backend,
            protocol: h2 ? "HTTP/2" : `HTTP/${req.httpVersion}`,
          },
          "request",
        );
      }
    });
  };
  return { handle, inFlight: () => inFlight };
}

function causeOf(err: ProxyError): string | undefined {
  const c = err.cause as { code?: string; message?: string } | undefined;
  if (c === undefined) return undefined;
  return c.code ?? c.message;
}

function replaceHost(headers: string[], host: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === "host") continue;
    out.push(headers[i] as string, headers[i + 1] as string);
  }
  out.push("host", host);
  return out;
}

function reject(
  req: IncomingRequest,
  res: OutgoingResponse,
  ctx: DirectionContext,
  start: number,
  grpc: boolean,
  method: string,
  authority: string,
  path: string,
  error: ProxyError,
): void {
  const signals = ctx.metrics.http({ direction: ctx.direction, authority });
  signals.request();
  respondWithError(res, error, grpc, ctx.draining() || hasRequestBody(req));
  const status = grpc ? 200 : error.status;
  signals.response(status, grpc ? error.grpcStatus : -1, performance.now() - start);
  // Discard whatever body the client still sends.
  req.resume();
  ctx.logger.warn(
    {
      direction: ctx.direction,
      method,
      authority,
      path,
      error: error.reason,
      status,
      grpcStatus: grpc ? error.grpcStatus : undefined,
    },
    "proxy error",
  );
}
