import type { IncomingHttpHeaders } from "node:http";
import { isGrpcContentType, removeHeaderInPlace } from "@mesh/core";
import type { GradientLimiter, RateLimiter } from "@mesh/limit";
import type { Dispatcher } from "undici";
import type { ProxyLogger } from "../log.js";
import type { HttpLabels, HttpSignals, ProxyMetrics } from "../metrics/proxy-metrics.js";
import { publishRequest, requestChannel } from "../tap/event.js";
import { setClientIdRaw } from "../transport/mtls/client-id.js";
import { ORIG_PROTO_HEADER, OrigProtoError, parseOrigProto } from "../transport/orig-proto.js";
import { hasRequestBody, type IncomingRequest } from "./body.js";
import { classifyError, ProxyError, respondWithError } from "./errors.js";
import { type ForwardResult, forwardTo, type OutgoingResponse } from "./forward.js";
import { parseGrpcTimeout } from "./grpc.js";
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
  /**
   * Outbound: the request may go to a meshed peer over HTTP/2; an HTTP/1.x request then
   * carries `mesh-orig-proto` so the peer hands it to its app as HTTP/1.x again.
   */
  origProto?: boolean | undefined;
  /** The upstream speaks HTTP/1.x (see `ForwardRequest.http1Upstream`). */
  http1Upstream?: boolean | undefined;
  /** Metric labels of the upstream connection: mTLS, and the server's expected identity. */
  tls?: boolean | undefined;
  serverId?: string | undefined;
  /**
   * The same object serves every request it matches (until a reload replaces it), so the
   * pipeline may keep per-target state on it: the metric handles by authority.
   */
  stable?: boolean | undefined;
  /** Pipeline state of a stable target (see {@link cachedSignals}): handles by authority. */
  signals?: Map<string, CachedSignals> | undefined;
  /** Inbound pipeline state of a stable target: handles by authority, then by client. */
  peerSignals?: Map<string, Map<string, CachedSignals>> | undefined;
}

/** A metric handle kept on a stable target, and when it was last resolved. */
interface CachedSignals {
  signals: HttpSignals;
  at: number;
}

/**
 * How long a cached metric handle is used before it is resolved again. The recorder drops
 * a label set only after minutes without traffic, so a handle resolved within the last
 * second is always the live one; re-resolving keeps it so after such a pause.
 */
const SIGNALS_REFRESH_MS = 1_000;
/**
 * Authorities a stable target caches handles for (port-less authorities match any port);
 * also the clients cached per authority inbound.
 */
const MAX_CACHED_AUTHORITIES = 64;

/** Inbound: what mTLS and the listener know about the connection a request came on. */
export interface PeerInfo {
  /** The client's verified SPIFFE ID; absent for plaintext clients. */
  clientId: string | undefined;
  /** The connection is mTLS. */
  tls: boolean;
  /** The client's IP address. */
  remoteAddress: string | undefined;
  /** The local port the connection arrived on. */
  port: number;
}

/** Inbound security hooks of the pipeline. */
export interface InboundSecurity {
  /** The peer of a request's connection. */
  peer(req: IncomingRequest): PeerInfo;
  /** Authorizes a request; a {@link ProxyError} (403 / PERMISSION_DENIED) refuses it. */
  admit(peer: PeerInfo, input: RouteInput): ProxyError | undefined;
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
  /** Inbound only: authorization, `mesh-client-id`, `mesh-orig-proto` decoding, labels. */
  security?: InboundSecurity | undefined;
  /**
   * Inbound: the rate limits of the current config (read per request, so reloads apply),
   * keyed by the verified client identity; checked after authorization.
   */
  rateLimiter?: (() => RateLimiter | undefined) | undefined;
  /** Inbound: the adaptive concurrency limit on requests to the app (current config). */
  concurrencyLimiter?: (() => GradientLimiter | undefined) | undefined;
}

/**
 * One request in the pipeline. It is also the {@link RouteInput} handed to routing and
 * authorization (`h2` there is the protocol the app gets), so a request costs one object.
 */
interface PipelineRequest extends RouteInput {
  req: IncomingRequest;
  res: OutgoingResponse;
  /** performance.now() when the request arrived. */
  start: number;
  /** Headers for the upstream (flat list; see `upstreamRequestHeaders`). */
  upstream: string[];
  /** Inbound: the connection's peer, once known. */
  peer: PeerInfo | undefined;
  /** The pipeline the request runs in. */
  pipeline: PipelineState;
  /** Where it is forwarded, once routed. */
  target: Target | undefined;
  /** Its metric handle, once routed. */
  signals: HttpSignals | undefined;
  /** The concurrency limiter holding a slot for it, and the start it gave. */
  concurrency: GradientLimiter | undefined;
  concurrencyStart: number;
}

/** The state one request pipeline shares across its requests. */
interface PipelineState {
  readonly ctx: DirectionContext;
  /** Requests being forwarded now (load shedding). */
  inFlight: number;
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
  const pipeline: PipelineState = { ctx, inFlight: 0 };
  const via11 = `1.1 ${ctx.pseudonym}`;
  const via2 = `2 ${ctx.pseudonym}`;
  const handle = (req: IncomingRequest, res: OutgoingResponse): void => {
    const start = performance.now();
    const h2 = req.httpVersionMajor === 2;
    const prepared = upstreamRequestHeaders(
      req.rawHeaders,
      req.headers,
      h2 ? via2 : req.httpVersion === "1.1" ? via11 : `${req.httpVersion} ${ctx.pseudonym}`,
    );
    const r: PipelineRequest = {
      method: req.method ?? "GET",
      authority: prepared.authority,
      path: req.url ?? "/",
      headers: req.headers,
      h2,
      grpc: isGrpcContentType(req.headers["content-type"]),
      req,
      res,
      start,
      upstream: prepared.headers,
      peer: undefined,
      pipeline,
      target: undefined,
      signals: undefined,
      concurrency: undefined,
      concurrencyStart: -1,
    };
    const refused = admit(ctx, r, pipeline.inFlight);
    if (refused !== undefined) {
      reject(ctx, r, refused);
      return;
    }
    let target: Target;
    try {
      target = ctx.resolve(r);
    } catch (err) {
      reject(ctx, r, classifyError(err));
      return;
    }
    const concurrency = ctx.concurrencyLimiter?.();
    if (concurrency !== undefined) {
      const started = concurrency.tryAcquire();
      if (started < 0) {
        reject(ctx, r, new ProxyError("MESH_PROXY_CONCURRENCY_LIMITED"));
        return;
      }
      r.concurrency = concurrency;
      r.concurrencyStart = started;
    }
    r.target = target;
    const { authority, grpc, peer } = r;
    if (target.origProto && !h2) r.upstream.push(ORIG_PROTO_HEADER, `HTTP/${req.httpVersion}`);
    let timeoutMs = target.timeoutMs;
    if (grpc) {
      const deadline = parseGrpcTimeout(req.headers["grpc-timeout"]);
      if (deadline !== undefined && (timeoutMs === undefined || deadline < timeoutMs))
        timeoutMs = deadline;
    }
    const signals =
      target.stable === true
        ? cachedSignals(ctx, target, authority, peer, start)
        : ctx.metrics.http(targetLabels(ctx, target, authority, peer));
    r.signals = signals;
    signals.request();
    pipeline.inFlight++;
    forwardTo(
      target.dispatcher,
      {
        req,
        res,
        origin: target.origin,
        method: r.method,
        path: r.path,
        headers: r.upstream,
        grpc,
        timeoutMs,
        idleTimeoutMs: target.idleTimeoutMs,
        closeConnection: ctx.draining(),
        http1Upstream: target.http1Upstream === true,
      },
      onForwarded,
      r,
    );
  };
  return { handle, inFlight: () => pipeline.inFlight };
}

/**
 * A forwarded request ended: metrics, then the error and access logs. Shared by every
 * request (the request rides as the argument), so a request allocates no closure for it.
 */
function onForwarded(result: ForwardResult, r: PipelineRequest): void {
  const { ctx } = r.pipeline;
  r.pipeline.inFlight--;
  // A request the app never saw (connect failure...) says nothing about its latency; one
  // that timed out does.
  r.concurrency?.release(
    r.concurrencyStart,
    result.error === undefined || result.error.code === "MESH_PROXY_TIMEOUT",
  );
  const target = r.target as Target;
  const signals = r.signals as HttpSignals;
  const { start, method, authority, path } = r;
  const latency = (result.firstByteAt || performance.now()) - start;
  if (result.status === 0) signals.streamError(latency);
  else signals.response(result.status, result.grpcStatus ?? -1, latency);
  // Tap: one property read when nobody taps; the event is built only for a subscriber.
  if (requestChannel.hasSubscribers) {
    const { status, grpcStatus, bytes, firstByteAt, error } = result;
    publishRequest(ctx.direction, r, target, status, grpcStatus, bytes, firstByteAt, error?.reason);
  }
  if (result.error !== undefined) {
    // A client hanging up is routine (cancelled calls, lost hedges) and, under a
    // rapid-reset attack, one line per stream: debug, not a proxy error.
    ctx.logger[result.clientCancelled ? "debug" : "warn"](
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
    const req = r.req;
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
        protocol: req.httpVersionMajor === 2 ? "HTTP/2" : `HTTP/${req.httpVersion}`,
      },
      "request",
    );
  }
}

/** The metric labels of a request to `target`. */
function targetLabels(
  ctx: DirectionContext,
  target: Target,
  authority: string,
  peer: PeerInfo | undefined,
): HttpLabels {
  const labels: HttpLabels = {
    direction: ctx.direction,
    authority,
    route: target.route,
    backend: target.backend,
  };
  if (peer !== undefined) {
    labels.tls = peer.tls;
    labels.clientId = peer.clientId;
  } else if (target.tls !== undefined) {
    labels.tls = target.tls;
    labels.serverId = target.serverId;
  }
  return labels;
}

/** What tells a client's metric labels apart: its verified ID, or how it connected. */
function peerKey(peer: PeerInfo): string {
  return peer.clientId ?? (peer.tls ? "\0tls" : "\0plaintext");
}

/**
 * The metric handle for requests to a stable target from `authority` (and, inbound, from
 * `peer`): resolved once a second at most instead of per request (resolving renders the
 * label set).
 */
function cachedSignals(
  ctx: DirectionContext,
  target: Target,
  authority: string,
  peer: PeerInfo | undefined,
  now: number,
): HttpSignals {
  if (peer === undefined) {
    target.signals ??= new Map();
    return refreshed(ctx, target.signals, authority, now, target, authority, undefined);
  }
  target.peerSignals ??= new Map();
  let peers = target.peerSignals.get(authority);
  if (peers === undefined) {
    // Full: resolve uncached rather than fill a map that is dropped at once.
    if (target.peerSignals.size >= MAX_CACHED_AUTHORITIES) {
      return ctx.metrics.http(targetLabels(ctx, target, authority, peer));
    }
    peers = new Map();
    target.peerSignals.set(authority, peers);
  }
  return refreshed(ctx, peers, peerKey(peer), now, target, authority, peer);
}

/** The handle cached under `key` in `cache`, resolved again when older than a second. */
function refreshed(
  ctx: DirectionContext,
  cache: Map<string, CachedSignals>,
  key: string,
  now: number,
  target: Target,
  authority: string,
  peer: PeerInfo | undefined,
): HttpSignals {
  const hit = cache.get(key);
  if (hit !== undefined && now - hit.at < SIGNALS_REFRESH_MS) return hit.signals;
  const signals = ctx.metrics.http(targetLabels(ctx, target, authority, peer));
  if (hit !== undefined) {
    hit.signals = signals;
    hit.at = now;
  } else if (cache.size < MAX_CACHED_AUTHORITIES) cache.set(key, { signals, at: now });
  return signals;
}

/**
 * The checks a request passes before routing: request target, loop protection, load
 * shedding, `mesh-orig-proto` decoding and (inbound) authorization, which also sets the
 * verified `mesh-client-id`, then the rate limits keyed by that identity. Updates `r` (absolute-form target, upstream headers, the
 * app's protocol, the peer); returns why the request is refused, if it is.
 */
function admit(
  ctx: DirectionContext,
  r: PipelineRequest,
  inFlight: number,
): ProxyError | undefined {
  const req = r.req;
  if (!r.h2 && r.path.charCodeAt(0) !== 47 /* '/' */ && r.path !== "*") {
    // absolute-form (HTTP_PROXY): the URL names the authority.
    try {
      const url = new URL(r.path);
      if (url.protocol !== "http:") throw new Error("scheme");
      r.authority = url.host.toLowerCase();
      r.path = `${url.pathname}${url.search}`;
      removeHeaderInPlace(r.upstream, "host");
      r.upstream.push("host", url.host);
    } catch {
      return new ProxyError("MESH_PROXY_BAD_REQUEST", "unsupported request target");
    }
  }
  if (viaContains(req.headers.via, ctx.pseudonym)) return new ProxyError("MESH_PROXY_LOOP");
  if (inFlight >= ctx.maxConcurrentRequests()) return new ProxyError("MESH_PROXY_LOAD_SHED");
  const security = ctx.security;
  const orig = req.headers[ORIG_PROTO_HEADER];
  if (orig !== undefined) {
    removeHeaderInPlace(r.upstream, ORIG_PROTO_HEADER);
    if (security !== undefined && r.h2) {
      try {
        if (Array.isArray(orig)) throw new OrigProtoError(orig.join(", "));
        parseOrigProto(orig);
        // Crossed the mesh as HTTP/2: the app gets HTTP/1.x again.
        r.h2 = false;
      } catch (err) {
        return new ProxyError("MESH_PROXY_BAD_REQUEST", (err as Error).message);
      }
    }
  }
  if (security === undefined) return undefined;
  const peer = security.peer(req);
  r.peer = peer;
  const denied = security.admit(peer, r);
  if (denied !== undefined) return denied;
  const rate = ctx.rateLimiter?.();
  if (rate !== undefined) {
    const wait = rate.tryAcquire(peer.clientId);
    if (wait < 0) {
      return new ProxyError("MESH_PROXY_RATE_LIMITED", `rate limited (${rate.rejectedBy} limit)`, {
        retryAfterMs: -wait,
      });
    }
  }
  // Never trust a client's own mesh-client-id; set the verified one.
  setClientIdRaw(r.upstream, peer.clientId);
  return undefined;
}

function causeOf(err: ProxyError): string | undefined {
  const c = err.cause as { code?: string; message?: string } | undefined;
  if (c === undefined) return undefined;
  return c.code ?? c.message;
}

/** Answers a refused request with its proxy error, and counts and logs it. */
function reject(ctx: DirectionContext, r: PipelineRequest, error: ProxyError): void {
  const { req, res, grpc, peer, authority } = r;
  const signals = ctx.metrics.http(
    peer === undefined
      ? { direction: ctx.direction, authority }
      : { direction: ctx.direction, authority, tls: peer.tls, clientId: peer.clientId },
  );
  signals.request();
  respondWithError(res, error, grpc, ctx.draining() || hasRequestBody(req));
  const status = grpc ? 200 : error.status;
  signals.response(status, grpc ? error.grpcStatus : -1, performance.now() - r.start);
  if (requestChannel.hasSubscribers) {
    const grpcStatus = grpc ? error.grpcStatus : undefined;
    publishRequest(ctx.direction, r, undefined, status, grpcStatus, 0, 0, error.reason);
  }
  // Discard whatever body the client still sends.
  req.resume();
  ctx.logger.warn(
    {
      direction: ctx.direction,
      method: r.method,
      authority,
      path: r.path,
      error: error.reason,
      status,
      grpcStatus: grpc ? error.grpcStatus : undefined,
      clientId: peer?.clientId,
    },
    "proxy error",
  );
}
