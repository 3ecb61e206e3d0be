import {
  Balancer,
  type BalancerOptions,
  dnsResolver,
  type EndpointInit,
  type EndpointSnapshot,
  fileResolver,
  type KubernetesDiscovery,
  type KubernetesServiceHold,
} from "@mesh/balancer";
import type { Dispatcher } from "undici";
import type { BalancerConfig, DiscoveryConfig, ServiceConfig } from "../config/schema.js";
import { endpointFactory, type MeshTransport } from "./endpoint-factory.js";

/**
 * Adapter between the outbound router and @mesh/balancer: one {@link Backend} is a set of
 * endpoints from one discovery source, balanced per request (P2C over Peak-EWMA cost, with
 * failure accrual). One `Balancer` per upstream protocol, created when first needed.
 */

/** One endpoint as the admin `/endpoints` page shows it. */
export type EndpointView = EndpointSnapshot;

/** Balancer settings of a service. */
export interface BackendSettings {
  connectTimeout: number;
  /** HTTP/1.1 connections per endpoint (the pool's `connections`). */
  connectionsPerEndpoint: number;
  /** Requests in flight or queued per endpoint before the balancer fails them fast. */
  maxPendingPerEndpoint: number;
  failFast: number;
  failureAccrual: ServiceConfig["failureAccrual"];
  /** Peak-EWMA, failure-rate and zone-local tuning (`services[].balancer`, defaults filled by the schema). */
  balancer: BalancerConfig;
}

/** The balancer options a service's `balancer` settings map to. */
function balancerTuning(
  config: BalancerConfig,
): Pick<
  BalancerOptions,
  "ewma" | "failureRate" | "pushback" | "localZone" | "localZoneMaxPending"
> {
  const options: ReturnType<typeof balancerTuning> = {
    ewma: { decayMs: config.ewma.decay, defaultRttMs: config.ewma.defaultRtt },
    failureRate: {
      decayMs: config.failureRate.decay,
      prior: config.failureRate.prior,
      failureCostFactor: config.failureRate.failureCostFactor,
    },
    pushback: { maxMs: config.pushback.max, costFactor: config.pushback.costFactor },
  };
  if (config.localZone !== undefined) {
    options.localZone = config.localZone;
    options.localZoneMaxPending = config.localZoneMaxPending;
  }
  return options;
}

/**
 * How a backend's endpoints are spoken to: plaintext HTTP/1.1, plaintext HTTP/2 (prior
 * knowledge), HTTP/2 inside mTLS to a meshed peer's inbound (ALPN h2), or HTTP/1.1 inside
 * mTLS (ALPN http/1.1; HTTP/1 clients with `outbound.meshHttp1: http1`).
 */
export type UpstreamProtocol = "http1" | "h2c" | "mtls-h2" | "mtls-http1";
type Protocol = UpstreamProtocol;

function endpointsOf(discovery: DiscoveryConfig, protocol: Protocol): EndpointInit[] | undefined {
  if (discovery.static === undefined) return undefined;
  return discovery.static.map((e) => {
    const init: EndpointInit = typeof e === "string" ? { address: e } : { address: e.address };
    if (typeof e !== "string") {
      if (e.weight !== undefined) init.weight = e.weight;
      if (e.identity !== undefined) init.identity = e.identity;
      if (e.zone !== undefined) init.zone = e.zone;
    }
    const p = typeof e === "string" ? protocol : (e.protocol ?? protocol);
    // Meshed endpoints speak HTTP/2 over mTLS (ALPN) whatever the client spoke, unless
    // HTTP/1 crosses as HTTP/1.1 (`meshHttp1: http1`).
    if (protocol === "mtls-http1") init.protocol = "http1";
    else init.protocol = p !== "http1" || init.identity !== undefined ? "h2" : "http1";
    return init;
  });
}

/** A balanced set of endpoints, with one balancer per upstream protocol. */
export class Backend {
  private readonly balancers = new Map<Protocol, Balancer>();
  /**
   * With `discovery.kubernetes`, the Service's shared watches, started with the backend (at
   * config time, not at the first request) so the first requests find endpoints listed.
   */
  private hold: KubernetesServiceHold | undefined;

  constructor(
    readonly name: string,
    private discovery: DiscoveryConfig,
    private readonly settings: BackendSettings,
    private readonly transport: () => MeshTransport = () => ({
      material: undefined,
      requireIdentity: false,
    }),
    private readonly onResolverError: (backend: string, err: Error) => void = () => undefined,
    /**
     * The proxy's shared Kubernetes discovery (one watch per Service, whoever names it), and
     * whether it gives endpoints identities (the proxy has one).
     */
    private readonly kubernetes?: () => { discovery: KubernetesDiscovery; meshed: boolean },
  ) {
    this.hold = this.holdKubernetes(discovery);
  }

  private holdKubernetes(d: DiscoveryConfig): KubernetesServiceHold | undefined {
    if (d.kubernetes === undefined) return undefined;
    if (this.kubernetes === undefined)
      throw new Error(
        `backend ${this.name}: discovery.kubernetes needs the proxy's Kubernetes discovery`,
      );
    return this.kubernetes().discovery.hold({
      service: d.kubernetes.service,
      namespace: d.kubernetes.namespace,
    });
  }

  /**
   * The Kubernetes Service (`namespace/service`) this backend follows, when its first list is
   * not in yet; undefined when it is, or for other discovery.
   */
  unsynced(): string | undefined {
    return this.hold !== undefined && !this.hold.synced ? this.hold.key : undefined;
  }

  /** Resolves once this backend's Kubernetes Service has listed (at once for other discovery). */
  synced(): Promise<void> {
    return this.hold?.whenSynced ?? Promise.resolve();
  }

  /** A stable key for "same balancer settings", used to reuse backends across reloads. */
  static key(settings: BackendSettings): string {
    return JSON.stringify(settings);
  }

  private create(protocol: Protocol): Balancer {
    const d = this.discovery;
    const s = this.settings;
    const options: BalancerOptions = {
      name: this.name,
      failFastMs: s.failFast,
      preserveHost: false,
      accrual: {
        mode: s.failureAccrual.mode,
        successRate: {
          threshold: s.failureAccrual.successRate.threshold,
          minRequests: s.failureAccrual.successRate.minRequests,
          windowMs: s.failureAccrual.successRate.window,
        },
        consecutiveFailures: s.failureAccrual.consecutiveFailures,
        minPenaltyMs: s.failureAccrual.minPenalty,
        maxPenaltyMs: s.failureAccrual.maxPenalty,
        jitter: s.failureAccrual.jitter,
      },
      ...balancerTuning(s.balancer),
      maxPendingPerEndpoint: s.maxPendingPerEndpoint,
      pool: {
        connectTimeout: s.connectTimeout,
        keepAliveTimeout: 4_000,
        connections: s.connectionsPerEndpoint,
      },
      onResolverError: (err) => this.onResolverError(this.name, err),
      factory: endpointFactory(this.transport, protocol === "http1" || protocol === "mtls-http1"),
    };
    const template = {
      protocol: protocol === "http1" || protocol === "mtls-http1" ? "http1" : "h2",
    } as const;
    if (d.static !== undefined) options.endpoints = endpointsOf(d, protocol) as EndpointInit[];
    else if (d.dns !== undefined) {
      options.endpoints = dnsResolver({
        hostname: d.dns.name,
        port: d.dns.port,
        intervalMs: d.dns.interval,
        template,
      });
    } else if (d.file !== undefined) options.endpoints = fileResolver(d.file.path);
    else if (d.kubernetes !== undefined) {
      if (this.kubernetes === undefined)
        throw new Error(
          `backend ${this.name}: discovery.kubernetes needs the proxy's Kubernetes discovery`,
        );
      // The port's appProtocol, when it says, overrides the client-protocol default.
      options.endpoints = this.kubernetes().discovery.resolver({
        service: d.kubernetes.service,
        namespace: d.kubernetes.namespace,
        port: d.kubernetes.port,
        protocol: template.protocol,
      });
    }
    return new Balancer(options);
  }

  /**
   * Applies new discovery. Static lists update the running balancers in place (endpoints in
   * use drain, in-flight requests finish); a changed DNS/file source replaces them.
   */
  update(discovery: DiscoveryConfig): void {
    if (JSON.stringify(discovery) === JSON.stringify(this.discovery)) return;
    const wasStatic = this.discovery.static !== undefined;
    this.discovery = discovery;
    // The new Service's watches start before the old ones are let go, so a change that keeps
    // the Service (another port) keeps its watches.
    const held = this.hold;
    this.hold = this.holdKubernetes(discovery);
    held?.release();
    for (const [protocol, balancer] of this.balancers) {
      if (wasStatic && discovery.static !== undefined) {
        balancer.update(endpointsOf(discovery, protocol) as EndpointInit[]);
      } else {
        this.balancers.set(protocol, this.create(protocol));
        void balancer.close();
      }
    }
  }

  /** The balancing dispatcher for an upstream protocol. */
  dispatcher(protocol: Protocol): Dispatcher {
    let b = this.balancers.get(protocol);
    if (b === undefined) {
      b = this.create(protocol);
      this.balancers.set(protocol, b);
    }
    return b;
  }

  /**
   * Whether requests may reach a meshed endpoint (one with an identity): static entries
   * with an identity, a file source (whose entries may carry identities), or Kubernetes
   * discovery in a proxy with an identity (every endpoint then has its Pod's).
   */
  meshed(): boolean {
    if (this.discovery.kubernetes !== undefined) return this.kubernetes?.().meshed ?? false;
    const s = this.discovery.static;
    if (s === undefined) return this.discovery.file !== undefined;
    return s.some((e) => typeof e !== "string" && e.identity !== undefined);
  }

  /** The identity every endpoint proves, when they all have the same one (for `server_id`). */
  serverId(): string | undefined {
    const s = this.discovery.static;
    if (s === undefined || s.length === 0) return undefined;
    const ids = new Set(s.map((e) => (typeof e === "string" ? undefined : e.identity)));
    return ids.size === 1 ? [...ids][0] : undefined;
  }

  /**
   * The protocol the discovery entries ask for, when they all agree. Meshed endpoints
   * always speak HTTP/2 (ALPN over mTLS), so a backend of meshed endpoints uses one
   * h2 balancer for every client protocol.
   */
  protocolHint(): Protocol | undefined {
    if (this.discovery.kubernetes !== undefined) return this.meshed() ? "mtls-h2" : undefined;
    const s = this.discovery.static;
    if (s === undefined) return undefined;
    if (s.length > 0 && s.every((e) => typeof e !== "string" && e.identity !== undefined))
      return "mtls-h2";
    const hints = new Set(s.map((e) => (typeof e === "string" ? undefined : e.protocol)));
    return hints.size === 1 ? [...hints][0] : undefined;
  }

  /** Endpoints with state, cost, pending and ejection, per protocol balancer in use. */
  snapshot(): (EndpointView & { protocol: string })[] {
    const out: (EndpointView & { protocol: string })[] = [];
    for (const [protocol, b] of this.balancers)
      for (const e of b.snapshot().endpoints) out.push({ ...e, protocol });
    if (out.length === 0 && this.discovery.static !== undefined) {
      // Nothing sent yet: show the configured endpoints without load data.
      for (const e of endpointsOf(this.discovery, "http1") ?? []) {
        out.push({
          address: e.address,
          origin: `http://${e.address}`,
          state: "ready",
          weight: e.weight ?? 1,
          pending: 0,
          cost: 0,
          rttMs: 0,
          consecutiveFailures: 0,
          requests: 0,
          failures: 0,
          failureRate: 0,
          ...(e.zone === undefined ? {} : { zone: e.zone }),
          protocol: "idle",
        });
      }
    }
    return out;
  }

  /** Closes gracefully: requests in flight finish first. */
  async close(): Promise<void> {
    this.hold?.release();
    this.hold = undefined;
    await Promise.all([...this.balancers.values()].map((b) => b.close()));
  }
}
