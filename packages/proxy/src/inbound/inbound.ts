import { Http2Client } from "@mesh/balancer";
import { GradientLimiter, RateLimiter } from "@mesh/limit";
import { type Dispatcher, Pool } from "undici";
import { type InboundConfig, inboundRateLimiterOptions } from "../config/schema.js";
import { createDirectionListener, type DirectionDeps } from "../http/direction.js";
import { ProxyError } from "../http/errors.js";
import type { HttpListener } from "../http/listener.js";
import type { PeerInfo, RouteInput, Target } from "../http/serve.js";
import { InboundTls, type MeshIdentity } from "../transport/mtls/index.js";
import { type AuthzPolicy, type AuthzRequest, compileAuthzPolicy } from "./authz/index.js";
import { InboundConnections } from "./connections.js";

/** Shared services an {@link Inbound} needs. */
export interface InboundDeps extends DirectionDeps {
  /** This proxy's identity: enables mTLS termination. */
  identity?: MeshIdentity | undefined;
}

/** Clients of the local app, one per protocol (an HTTP/1.1 pool; one multiplexed h2c connection), created when first needed. */
class AppClients {
  private h1: Pool | undefined;
  private h2: Http2Client | undefined;
  readonly origin: string;

  constructor(
    readonly address: string,
    private readonly connectTimeout: number,
    private readonly connections: number,
  ) {
    this.origin = `http://${address}`;
  }

  get(protocol: "http1" | "h2c"): Dispatcher {
    if (protocol === "h2c") {
      this.h2 ??= new Http2Client(this.origin, { connectTimeout: this.connectTimeout });
      return this.h2;
    }
    this.h1 ??= new Pool(this.origin, {
      connectTimeout: this.connectTimeout,
      keepAliveTimeout: 4_000,
      connections: this.connections,
    });
    return this.h1;
  }

  /** Closes gracefully: requests in flight finish first. */
  async close(): Promise<void> {
    await Promise.all([this.h1?.close(), this.h2?.close()]);
  }
}

/**
 * The inbound rate and concurrency limiters, built from config by @mesh/limit. A reload
 * that leaves a section unchanged keeps its limiter, and with it the clients' rate state
 * and the learned concurrency limit.
 */
class InboundLimits {
  rate: RateLimiter | undefined;
  concurrency: GradientLimiter | undefined;
  private rateKey = "";
  private concurrencyKey = "";

  constructor(config: InboundConfig) {
    this.update(config);
  }

  update(config: InboundConfig): void {
    const rateKey = JSON.stringify(config.rateLimit ?? null);
    if (rateKey !== this.rateKey) {
      this.rateKey = rateKey;
      this.rate =
        config.rateLimit === undefined
          ? undefined
          : new RateLimiter(inboundRateLimiterOptions(config.rateLimit));
    }
    const concurrencyKey = JSON.stringify(config.adaptiveConcurrency ?? null);
    if (concurrencyKey !== this.concurrencyKey) {
      this.concurrencyKey = concurrencyKey;
      const a = config.adaptiveConcurrency;
      this.concurrency =
        a === undefined
          ? undefined
          : new GradientLimiter({
              name: "inbound",
              ...Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)),
            });
    }
  }
}

const PLAINTEXT_PEER: PeerInfo = {
  clientId: undefined,
  tls: false,
  remoteAddress: undefined,
  port: 0,
};

/**
 * The inbound side: accepts mTLS (HTTP/2, HTTP/1.1, opaque TCP), plaintext HTTP/1.1 and
 * h2c, and plaintext TCP from peers; authorizes every request or connection with the
 * policy; forwards to the local app in the protocol the config asks for (`auto` mirrors
 * the client's; HTTP/1.1 carried over HTTP/2 with `mesh-orig-proto` is HTTP/1.1 again).
 */
export class Inbound {
  readonly listener: HttpListener;
  private config: InboundConfig;
  private app: AppClients;
  private policy: AuthzPolicy;
  private readonly limits: InboundLimits;
  private readonly tls: InboundTls | undefined;
  private readonly authzRequest: AuthzRequest = {
    clientId: undefined,
    remoteAddress: undefined,
    port: 0,
    protocol: "http",
    method: "",
    path: "",
  };

  constructor(config: InboundConfig, deps: InboundDeps) {
    this.config = config;
    this.app = new AppClients(config.app, config.connectTimeout, config.appConnections);
    this.policy = Inbound.compile(config, deps.identity?.trustDomain);
    this.limits = new InboundLimits(config);
    this.trustDomain = deps.identity?.trustDomain;
    this.tls =
      deps.identity === undefined
        ? undefined
        : new InboundTls(deps.identity.source, { handshakeTimeoutMs: config.limits.detectTimeout });
    const connections = new InboundConnections({
      config: () => this.config,
      policy: () => this.policy,
      tls: this.tls,
      listener: () => this.listener,
      metrics: deps.metrics,
      logger: deps.logger,
    });
    this.listener = createDirectionListener({
      direction: "inbound",
      deps,
      limits: config.limits,
      maxConcurrentRequests: () => this.config.maxConcurrentRequests,
      rateLimiter: () => this.limits.rate,
      concurrencyLimiter: () => this.limits.concurrency,
      resolve: (input) => this.resolve(input),
      route: connections.route,
      security: {
        peer: (req) =>
          (this.listener.connectionInfo(req) as PeerInfo | undefined) ?? PLAINTEXT_PEER,
        admit: (peer, input) => {
          // One request object reused: authorization is synchronous and keeps nothing.
          const q = this.authzRequest;
          q.clientId = peer.clientId;
          q.remoteAddress = peer.remoteAddress;
          q.port = peer.port;
          q.protocol = input.grpc ? "grpc" : "http";
          q.method = input.method;
          q.path = input.path;
          const d = this.policy.authorize(q);
          return d.allowed
            ? undefined
            : new ProxyError("MESH_PROXY_FORBIDDEN", `forbidden by policy (${d.reason})`);
        },
      },
    });
  }

  private readonly trustDomain: string | undefined;

  private static compile(config: InboundConfig, trustDomain: string | undefined): AuthzPolicy {
    return compileAuthzPolicy(config.policy, {
      path: "inbound.policy",
      ...(trustDomain !== undefined ? { trustDomain } : {}),
    });
  }

  /**
   * The app target per protocol for the current config and app clients: built once and
   * reused (`stable`), so the pipeline keeps its metric handles on it; `update` drops them.
   */
  private targets: Partial<Record<"http1" | "h2c", Target>> = {};

  private resolve(input: RouteInput): Target {
    const c = this.config;
    const protocol = c.appProtocol === "auto" ? (input.h2 ? "h2c" : "http1") : c.appProtocol;
    let target = this.targets[protocol];
    if (target === undefined) {
      target = {
        dispatcher: this.app.get(protocol),
        origin: this.app.origin,
        timeoutMs: c.timeout.request,
        idleTimeoutMs: c.timeout.idle,
        http1Upstream: protocol === "http1",
        stable: true,
      };
      this.targets[protocol] = target;
    }
    return target;
  }

  /**
   * Applies a new inbound config. The app address, protocol and timeouts change live;
   * listener address and limits need a restart (returned as warnings).
   */
  update(next: InboundConfig): string[] {
    const warnings: string[] = [];
    if (next.listen !== this.config.listen) warnings.push("inbound.listen changes need a restart");
    if (JSON.stringify(next.limits) !== JSON.stringify(this.config.limits))
      warnings.push("inbound.limits changes need a restart");
    if (
      next.app !== this.config.app ||
      next.connectTimeout !== this.config.connectTimeout ||
      next.appConnections !== this.config.appConnections
    ) {
      const old = this.app;
      this.app = new AppClients(next.app, next.connectTimeout, next.appConnections);
      void old.close();
    }
    // Compiled before anything changes: the schema validated it, so this does not throw.
    this.policy = Inbound.compile(next, this.trustDomain);
    this.limits.update(next);
    this.config = next;
    this.targets = {};
    return warnings;
  }

  /** Stops accepting, drains, then closes app connections. */
  async close(graceMs: number): Promise<void> {
    await this.listener.close(graceMs);
    this.tls?.close();
    await this.app.close();
  }
}
