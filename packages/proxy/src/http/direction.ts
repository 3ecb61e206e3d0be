import type { Socket } from "node:net";
import type { GradientLimiter, RateLimiter } from "@mesh/limit";
import type { LimitsConfig } from "../config/schema.js";
import type { ProxyLogger } from "../log.js";
import type { ProxyMetrics } from "../metrics/proxy-metrics.js";
import { HttpListener } from "./listener.js";
import {
  createRequestPipeline,
  type InboundSecurity,
  type RouteInput,
  type Target,
} from "./serve.js";

/** Shared services both directions need. */
export interface DirectionDeps {
  logger: ProxyLogger;
  metrics: ProxyMetrics;
  /** This proxy's name in `via` headers (the direction is appended). */
  proxyId: string;
  accessLog: boolean;
}

/** Options of {@link createDirectionListener}. */
export interface DirectionListenerOptions {
  direction: "inbound" | "outbound";
  deps: DirectionDeps;
  limits: LimitsConfig;
  /** Load-shedding threshold, read per request so reloads apply. */
  maxConcurrentRequests(): number;
  /** Routes a request, or throws a `ProxyError`. */
  resolve(input: RouteInput): Target;
  /** Inbound: authorization and the verified client identity. */
  security?: InboundSecurity | undefined;
  /** Inbound: rate limits of the current config, keyed by client identity. */
  rateLimiter?: (() => RateLimiter | undefined) | undefined;
  /** Inbound: adaptive concurrency limit of the current config. */
  concurrencyLimiter?: (() => GradientLimiter | undefined) | undefined;
  /** Inbound: takes over accepted connections (TLS, opaque TCP) instead of HTTP detection. */
  route?: ((socket: Socket) => void) | undefined;
}

/**
 * The listener of one direction with the shared request pipeline behind it: the one way
 * inbound and outbound are assembled, so they differ only in routing and security.
 */
export function createDirectionListener(o: DirectionListenerOptions): HttpListener {
  const { deps } = o;
  const pipeline = createRequestPipeline({
    direction: o.direction,
    pseudonym: `${deps.proxyId}-${o.direction}`,
    maxConcurrentRequests: o.maxConcurrentRequests,
    logger: deps.logger,
    accessLog: deps.accessLog,
    metrics: deps.metrics,
    draining: () => listener.draining,
    resolve: o.resolve,
    security: o.security,
    rateLimiter: o.rateLimiter,
    concurrencyLimiter: o.concurrencyLimiter,
  });
  const listener: HttpListener = new HttpListener({
    name: o.direction,
    limits: o.limits,
    logger: deps.logger,
    handler: pipeline.handle,
    route: o.route,
  });
  return listener;
}
