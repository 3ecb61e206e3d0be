import { Http2Client, type KubernetesDiscovery } from "@mesh/balancer";
import { rateLimit } from "@mesh/limit";
import { type HedgeOptions, hedge, RetryBudget, type RetryPolicyOptions, retry } from "@mesh/retry";
import { type IdentityMaterial, negotiatedGroup } from "@mesh/tls-identity";
import { Agent, type Dispatcher } from "undici";
import { splitRetryConditions } from "../config/retry-conditions.js";
import type {
  BackendConfig,
  HedgeConfig,
  OutboundConfig,
  RetryConfig,
  ServiceConfig,
} from "../config/schema.js";
import { createDirectionListener, type DirectionDeps } from "../http/direction.js";
import { ProxyError } from "../http/errors.js";
import type { HttpListener } from "../http/listener.js";
import type { RouteInput, Target } from "../http/serve.js";
import type { ProxyLogger } from "../log.js";
import {
  Backend,
  type BackendSettings,
  type EndpointView,
  type UpstreamProtocol,
} from "./backend.js";
import type { MeshTransport } from "./endpoint-factory.js";
import { type RouteEntry, RouteTable, type ServiceEntry } from "./router.js";
import { OutboundTcp } from "./tcp.js";

type RateLimit = ReturnType<typeof rateLimit>;

/** Shared services an {@link Outbound} needs. */
export interface OutboundDeps extends DirectionDeps {
  /** This proxy's SVID for mTLS to meshed endpoints (absent without an identity). */
  material?: IdentityMaterial | undefined;
  /** The shared Kubernetes discovery, created at first use (`discovery.kubernetes`). */
  kubernetes?: () => { discovery: KubernetesDiscovery; meshed: boolean };
}

/** One generation of routing state; a reload builds the next one. */
interface Generation {
  config: OutboundConfig;
  table: RouteTable;
  /** Composed retry → balancer dispatchers, by route/backend/protocol. */
  chains: Map<string, Dispatcher>;
  /**
   * Resolved targets by route and backend, `[HTTP/1.x client, HTTP/2 client]`: everything in
   * a target is fixed for the generation, so a request costs two map lookups, not a rebuild.
   */
  targets: Map<RouteEntry, Map<BackendConfig, [Target | undefined, Target | undefined]>>;
}

/** Backends of one service, with the settings they were made with. */
interface BackendSlot {
  backend: Backend;
  key: string;
}

/** Snapshot of a service for `/endpoints`. */
export interface ServiceEndpoints {
  service: string;
  backends: { name: string; weight: number; endpoints: EndpointView[] }[];
}

/**
 * The outbound side: the app's requests, routed by authority → service → route → weighted
 * backend → retry (budget, per-try timeout) → balancer → endpoint. Routing state is swapped
 * whole on reload; backends with unchanged discovery are reused, requests in flight keep
 * the dispatchers they started with.
 */
export class Outbound {
  readonly listener: HttpListener;
  /** The opaque TCP listeners (`outbound.tcp`). */
  readonly tcp: OutboundTcp;
  private gen: Generation;
  private readonly backends = new Map<string, BackendSlot>();
  private readonly budgets = new Map<string, { key: string; budget: RetryBudget }>();
  /**
   * Per-service rate-limit interceptors (one limiter and one queue for all the service's
   * routes and backends), kept across reloads while their config is unchanged.
   */
  private readonly rateLimits = new Map<string, { key: string; limit: RateLimit }>();
  private readonly passthrough = {
    h1: undefined as Agent | undefined,
    h2: undefined as Agent | undefined,
  };
  private readonly logger: ProxyLogger;
  private readonly transport: () => MeshTransport;

  private readonly kubernetes: OutboundDeps["kubernetes"];
  private readonly onResolverError = (backend: string, err: Error) =>
    this.logger.warn({ backend, err: err.message }, "discovery failed; keeping the last endpoints");

  constructor(config: OutboundConfig, deps: OutboundDeps) {
    this.logger = deps.logger;
    this.kubernetes = deps.kubernetes;
    // Read when a connection pool is created, so requireIdentity follows reloads.
    this.transport = () => ({
      material: deps.material,
      requireIdentity: this.gen.config.requireIdentity,
      meshHttp1: this.gen.config.meshHttp1,
      onTlsConnect: (socket, serverId) =>
        deps.metrics.tlsConnected(serverId, negotiatedGroup(socket)),
    });
    this.gen = this.build(config);
    this.tcp = new OutboundTcp(config.tcp, {
      logger: deps.logger,
      metrics: deps.metrics,
      material: deps.material,
      requireIdentity: () => this.gen.config.requireIdentity,
    });
    this.listener = createDirectionListener({
      direction: "outbound",
      deps,
      limits: config.limits,
      maxConcurrentRequests: () => this.gen.config.maxConcurrentRequests,
      resolve: (input) => this.resolve(input),
    });
  }

  private build(config: OutboundConfig): Generation {
    const table = new RouteTable(config);
    const used = new Set<string>();
    for (const svc of table.services) {
      const settings: BackendSettings = {
        connectTimeout: config.connectTimeout,
        connectionsPerEndpoint: config.connectionsPerEndpoint,
        maxPendingPerEndpoint: config.maxPendingPerEndpoint,
        failFast: svc.config.failFast,
        failureAccrual: svc.config.failureAccrual,
        balancer: svc.config.balancer,
      };
      for (const route of [svc.defaultRoute, ...svc.routes]) {
        for (const b of route.backends) {
          const id = `${svc.config.name}/${b.name}`;
          if (used.has(id)) continue;
          used.add(id);
          const key = Backend.key(settings);
          const slot = this.backends.get(id);
          if (slot !== undefined && slot.key === key) {
            slot.backend.update(b.discovery);
            continue;
          }
          const old = slot?.backend;
          this.backends.set(id, {
            backend: new Backend(
              b.name,
              b.discovery,
              settings,
              this.transport,
              this.onResolverError,
              this.kubernetes,
            ),
            key,
          });
          if (old !== undefined) void old.close();
        }
      }
    }
    for (const [id, slot] of this.backends) {
      if (!used.has(id)) {
        this.backends.delete(id);
        void slot.backend.close();
      }
    }
    return { config, table, chains: new Map(), targets: new Map() };
  }

  private budgetFor(
    service: ServiceConfig,
    scope: string,
    budget: RetryConfig["budget"],
  ): RetryBudget {
    const id = `${service.name}/${scope}`;
    const key = JSON.stringify(budget);
    const have = this.budgets.get(id);
    if (have !== undefined && have.key === key) return have.budget;
    const b = new RetryBudget({
      name: id,
      retryRatio: budget.ratio,
      minRetriesPerSecond: budget.minPerSecond,
      ttl: budget.ttl,
    });
    this.budgets.set(id, { key, budget: b });
    return b;
  }

  /** The service's rate-limit interceptor, if it has a limit. */
  private rateLimitFor(service: ServiceConfig): RateLimit | undefined {
    const c = service.rateLimit;
    if (c === undefined) {
      this.rateLimits.delete(service.name);
      return undefined;
    }
    const key = JSON.stringify(c);
    const have = this.rateLimits.get(service.name);
    if (have !== undefined && have.key === key) return have.limit;
    const limit = rateLimit({
      limiter: {
        name: service.name,
        total: {
          requestsPerSecond: c.requestsPerSecond,
          ...(c.burst !== undefined ? { burst: c.burst } : {}),
        },
      },
      mode: c.mode,
      maxWait: c.maxWait,
      maxQueue: c.maxQueue,
    });
    this.rateLimits.set(service.name, { key, limit });
    return limit;
  }

  private chain(
    gen: Generation,
    svc: ServiceEntry,
    route: RouteEntry,
    backendName: string,
    protocol: UpstreamProtocol,
  ): Dispatcher {
    const key = `${svc.config.name}\u0000${route.name}\u0000${backendName}\u0000${protocol}`;
    const have = gen.chains.get(key);
    if (have !== undefined) return have;
    const backend = this.backends.get(`${svc.config.name}/${backendName}`)?.backend;
    if (backend === undefined) throw new ProxyError("MESH_PROXY_NO_ENDPOINTS");
    const base = backend.dispatcher(protocol);
    const r = route.config?.retry;
    const s = svc.config.retry;
    const on = r?.on ?? s.on;
    const perTry = route.config?.timeout?.perTry ?? svc.config.timeout.perTry;
    const budget =
      r?.budget !== undefined
        ? this.budgetFor(svc.config, `route:${route.name}`, r.budget)
        : this.budgetFor(svc.config, "service", s.budget);
    const backoff = r?.backoff ?? s.backoff;
    const options: RetryPolicyOptions = {
      name: `${svc.config.name}/${route.name}`,
      limit: on.length === 0 ? 0 : (r?.limit ?? s.limit),
      ...splitRetryConditions(on),
      retryNonIdempotent: r?.nonIdempotent ?? s.nonIdempotent,
      maxReplayBytes: r?.maxReplayBytes ?? s.maxReplayBytes,
      backoff,
      budget,
    };
    if (perTry !== undefined) options.perTryTimeout = perTry;
    // A route hedges or retries (gRPC A6: one policy per method), on the same budget.
    const h = route.config?.hedge ?? svc.config.hedge;
    const attempts = h === undefined ? retry(options) : hedge(hedgeOptions(options, h, on));
    // undici's compose(), as the libraries' READMEs teach: retries wrap the balancer, and the
    // rate limit is outermost, so a request is counted (or refused) once, not per attempt.
    const interceptors = [attempts as Dispatcher.DispatcherComposeInterceptor];
    const limit = this.rateLimitFor(svc.config);
    if (limit !== undefined) interceptors.push(limit as Dispatcher.DispatcherComposeInterceptor);
    const d = base.compose(interceptors);
    gen.chains.set(key, d);
    return d;
  }

  private resolve(input: RouteInput): Target {
    const gen = this.gen;
    const decision = gen.table.route(input.authority, input.method, input.path, input.headers);
    if (decision === undefined) {
      if (gen.config.unknownAuthority === "deny")
        throw new ProxyError("MESH_PROXY_UNKNOWN_AUTHORITY");
      if (input.authority === "")
        throw new ProxyError("MESH_PROXY_BAD_REQUEST", "request has no authority");
      if (gen.config.requireIdentity)
        throw new ProxyError(
          "MESH_PROXY_IDENTITY_REQUIRED",
          "unknown authority has no identity (requireIdentity)",
        );
      return { dispatcher: this.passthroughAgent(input.h2), origin: `http://${input.authority}` };
    }
    const { service, route, backend } = decision;
    let byBackend = gen.targets.get(route);
    if (byBackend === undefined) {
      byBackend = new Map();
      gen.targets.set(route, byBackend);
    }
    let pair = byBackend.get(backend);
    if (pair === undefined) {
      pair = [undefined, undefined];
      byBackend.set(backend, pair);
    }
    const slot = input.h2 ? 1 : 0;
    const cached = pair[slot];
    if (cached !== undefined) return cached;
    const target = this.target(gen, service, route, backend.name, input.h2);
    pair[slot] = target;
    return target;
  }

  /** Builds the target of a route's backend for clients of one protocol (cached per generation). */
  private target(
    gen: Generation,
    service: ServiceEntry,
    route: RouteEntry,
    backendName: string,
    h2: boolean,
  ): Target {
    const sc = service.config;
    const be = this.backends.get(`${sc.name}/${backendName}`)?.backend;
    const hint = be?.protocolHint();
    // Meshed backends multiplex everything on HTTP/2 whatever the service's protocol says,
    // unless HTTP/1 crosses the mesh as HTTP/1.1 (`meshHttp1: http1`).
    const http1Hop = gen.config.meshHttp1 === "http1";
    let protocol: UpstreamProtocol =
      sc.protocol === "auto" || hint === "mtls-h2" ? (hint ?? (h2 ? "h2c" : "http1")) : sc.protocol;
    if (protocol === "mtls-h2" && http1Hop && !h2) protocol = "mtls-http1";
    const meshed = be?.meshed();
    return {
      // HTTP/1 requests carried on HTTP/2 tell the inbound their version.
      origProto: meshed && !http1Hop,
      tls: meshed ? hint === "mtls-h2" || undefined : undefined,
      serverId: meshed ? be?.serverId() : undefined,
      dispatcher: this.chain(gen, service, route, backendName, protocol),
      origin: `http://${sc.name}`,
      timeoutMs: route.config?.timeout?.request ?? sc.timeout.request,
      idleTimeoutMs: route.config?.timeout?.idle ?? sc.timeout.idle,
      route: route.name,
      backend: backendName,
      stable: true,
    };
  }

  private passthroughAgent(h2: boolean): Agent {
    const connectTimeout = this.gen.config.connectTimeout;
    if (h2) {
      // The factory builds every connection, so the timeout is given to it alone.
      this.passthrough.h2 ??= new Agent({
        factory: (origin: string | URL) => new Http2Client(origin, { connectTimeout }),
      } as Agent.Options);
      return this.passthrough.h2;
    }
    this.passthrough.h1 ??= new Agent({
      connectTimeout,
      keepAliveTimeout: 4_000,
      connections: this.gen.config.connectionsPerEndpoint,
    });
    return this.passthrough.h1;
  }

  /**
   * Applies a new outbound config: routes, splits, endpoints, retry and timeout settings
   * change live. Listener address and limits need a restart (returned as warnings).
   */
  update(next: OutboundConfig): string[] {
    const warnings: string[] = [];
    const cur = this.gen.config;
    if (next.listen !== cur.listen) warnings.push("outbound.listen changes need a restart");
    if (JSON.stringify(next.limits) !== JSON.stringify(cur.limits))
      warnings.push("outbound.limits changes need a restart");
    warnings.push(...this.tcp.update(next.tcp));
    this.gen = this.build(next);
    return warnings;
  }

  /**
   * The Kubernetes Services (`namespace/service`) some backend follows whose first list is not
   * in yet. Their watches run from the moment the config names them.
   */
  unsyncedDiscovery(): string[] {
    const out = new Set<string>();
    for (const { backend } of this.backends.values()) {
      const key = backend.unsynced();
      if (key !== undefined) out.add(key);
    }
    return [...out].sort();
  }

  /** Resolves once every backend of the current config has its first Kubernetes list. */
  async discoverySynced(): Promise<void> {
    await Promise.all([...this.backends.values()].map(({ backend }) => backend.synced()));
  }

  /** Each service's backends and endpoints, for `/endpoints`. */
  endpoints(): ServiceEndpoints[] {
    return this.gen.table.services.map((svc) => {
      const seen = new Map<string, number>();
      for (const r of [svc.defaultRoute, ...svc.routes])
        for (const b of r.backends) if (!seen.has(b.name)) seen.set(b.name, b.weight);
      return {
        service: svc.config.name,
        backends: [...seen].map(([name, weight]) => ({
          name,
          weight,
          endpoints: this.backends.get(`${svc.config.name}/${name}`)?.backend.snapshot() ?? [],
        })),
      };
    });
  }

  /** Stops accepting, drains, then closes upstream connections. */
  async close(graceMs: number): Promise<void> {
    await Promise.all([this.listener.close(graceMs), this.tcp.close(graceMs)]);
    await Promise.all([
      ...[...this.backends.values()].map((s) => s.backend.close()),
      this.passthrough.h1?.close(),
      this.passthrough.h2?.close(),
    ]);
  }
}

/** `hedge()` options for a route: its hedge settings, on the route's retry budget. */
function hedgeOptions(
  retryOptions: RetryPolicyOptions,
  h: HedgeConfig,
  on: readonly string[],
): HedgeOptions {
  const nonFatal = splitRetryConditions(h.nonFatal ?? on);
  return {
    name: retryOptions.name as string,
    delay: h.delay,
    maxAttempts: h.maxAttempts,
    nonFatal,
    grpcMethods: h.grpcMethods,
    maxReplayBytes: retryOptions.maxReplayBytes as number,
    budget: retryOptions.budget as RetryBudget,
  };
}
