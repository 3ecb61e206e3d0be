import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { defaultKubeApi, KubernetesDiscovery } from "@mesh/balancer";
import { AdminServer } from "./admin/admin.js";
import { formatHostPort } from "./config/address.js";
import { changedPaths } from "./config/diff.js";
import { ConfigError, formatProblem } from "./config/errors.js";
import { loadConfigFile } from "./config/load.js";
import { redactConfig } from "./config/redact.js";
import { KUBERNETES_READY_TIMEOUT, type ProxyConfig } from "./config/schema.js";
import { ConfigWatcher } from "./config/watch.js";
import { Inbound } from "./inbound/inbound.js";
import { createLogger, type ProxyLogger } from "./log.js";
import { ProxyMetrics } from "./metrics/proxy-metrics.js";
import { Outbound } from "./outbound/outbound.js";
import { TapHub } from "./tap/hub.js";
import { type IssuerBundleWatch, watchIssuerBundle } from "./transport/mtls/bundle-watch.js";
import { createIdentity, type MeshIdentity } from "./transport/mtls/identity.js";
import { warmUpPipeline } from "./warmup/warmup.js";

/** Options of {@link MeshProxy.start}. */
export interface ProxyOptions {
  /** The parsed configuration. */
  config: ProxyConfig;
  /** The file it came from: enables reload on change and on `reloadFromFile()`. */
  configFile?: string;
  /** Environment for `MESH_PROXY_*` overrides on reload. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Logger; default pino JSON to stdout at the configured level. */
  logger?: ProxyLogger;
  /** Watch `configFile` for changes. Default true when `configFile` is set. */
  watch?: boolean;
}

/** Bound addresses of a running proxy. */
export interface ProxyAddresses {
  admin: string;
  inbound?: string;
  outbound?: string;
  /** Outbound opaque-TCP listeners by name. */
  tcp?: Record<string, string>;
}

/**
 * Why a reload cannot apply an identity change, naming the changed fields and what keeps
 * running until the restart; undefined when the identity section is unchanged.
 */
function identityReloadWarning(
  cur: ProxyConfig["identity"],
  next: ProxyConfig["identity"],
): string | undefined {
  if (cur === undefined && next === undefined) return undefined;
  if (cur === undefined)
    return "adding identity needs a restart; until then the proxy runs without mTLS";
  if (next === undefined)
    return `removing identity needs a restart; until then the proxy keeps serving mTLS as ${cur.id}`;
  const changed = changedPaths(cur, next, ["identity"]);
  if (changed.length === 0) return undefined;
  const source =
    cur.issuer !== undefined
      ? `from the issuer ${cur.issuer.url}`
      : cur.workloadApi !== undefined
        ? `from the Workload API at ${cur.workloadApi.socket}`
        : "from its files";
  return `${changed.join(", ")} changed: identity changes need a restart; until then the proxy keeps serving as ${cur.id} with certificates ${source}`;
}

/** The part of the `kubernetes` section that needs a restart (how the API server is reached). */
function apiAccess(k: ProxyConfig["kubernetes"]): string {
  return JSON.stringify(k === undefined ? {} : { kubeconfig: k.kubeconfig, context: k.context });
}

function hostPort(a: AddressInfo): string {
  return formatHostPort(a.address, a.port);
}

/**
 * A running sidecar: admin server, and the inbound and/or outbound listeners the config
 * asks for. Reloads routes, splits, endpoints, retries and timeouts live; shuts down
 * gracefully.
 */
export class MeshProxy {
  readonly logger: ProxyLogger;
  readonly metrics = new ProxyMetrics();
  /** Bound addresses (ports resolved when the config asked for port 0). */
  readonly addresses: ProxyAddresses = { admin: "" };
  private config: ProxyConfig;
  /** The config a {@link reload} is applying (its `kubernetes` section is the one to use). */
  private applying: ProxyConfig | undefined;
  private readonly options: ProxyOptions;
  private readonly admin: AdminServer;
  private inbound: Inbound | undefined;
  private outbound: Outbound | undefined;
  /** This proxy's workload identity, when configured. */
  identity: MeshIdentity | undefined;
  private bundleWatch: IssuerBundleWatch | undefined;
  private kubernetes: KubernetesDiscovery | undefined;
  private isReady = false;
  /**
   * False at start while a `discovery.kubernetes` Service has not listed yet (bounded by
   * `kubernetes.readyTimeout`); true from then on, reloads do not take it back.
   */
  private discoveryListed = false;
  /** False at start until the warm-up (`warmup`) ended; true from then on. */
  private warmedUp = false;
  private discoveryTimer: NodeJS.Timeout | undefined;
  /** While waiting for the first lists: checks again (after a reload changed the Services). */
  private recheckDiscovery: (() => void) | undefined;
  private shuttingDown: Promise<void> | undefined;
  private watcher: ConfigWatcher | undefined;
  private readonly proxyId: string;
  private markClosed!: () => void;
  /** Resolves once a shutdown (signal, `POST /shutdown` or {@link MeshProxy.shutdown}) completed. */
  readonly closed = new Promise<void>((resolve) => {
    this.markClosed = resolve;
  });

  private constructor(options: ProxyOptions) {
    this.options = options;
    this.config = options.config;
    this.logger = options.logger ?? createLogger(options.config.log.level);
    this.proxyId = options.config.proxyId ?? `mesh-${randomBytes(4).toString("hex")}`;
    this.admin = new AdminServer({
      // Not ready until an SVID is held; stays ready while the current one is valid, even
      // if renewals fail (the issuer is down).
      // Not ready either before the first list of every discovery.kubernetes Service (or
      // kubernetes.readyTimeout), so the app's first requests find endpoints.
      ready: () =>
        this.isReady &&
        this.discoveryListed &&
        this.warmedUp &&
        (this.identity === undefined || this.identity.isReady()),
      metrics: () => ({ body: this.metrics.render(), contentType: this.metrics.contentType }),
      config: () => redactConfig(this.config),
      endpoints: () => this.outbound?.endpoints() ?? [],
      shutdown: () => void this.shutdown(),
      shutdownEnabled: options.config.admin.shutdownEndpoint,
      tap: new TapHub(() => this.config.admin.tap, this.metrics.signals.registry),
    });
  }

  /** Binds every listener and resolves once the proxy is ready. */
  static async start(options: ProxyOptions): Promise<MeshProxy> {
    const proxy = new MeshProxy(options);
    await proxy.bind();
    return proxy;
  }

  private async startIdentity(): Promise<void> {
    const c = this.config.identity;
    if (c === undefined) return;
    const base =
      this.options.configFile === undefined ? process.cwd() : dirname(this.options.configFile);
    const identity = await createIdentity(c, {
      baseDir: base,
      timing: {
        renewFraction: c.renewal.fraction,
        minRefreshMs: c.renewal.min,
        maxRefreshMs: c.renewal.max,
        retryInitialMs: c.renewal.retryInitial,
        retryMaxMs: c.renewal.retryMax,
      },
    });
    this.identity = identity;
    identity.source.on("update", (snap) => {
      this.logger.info(
        {
          spiffeId: snap.svid.spiffeId.toString(),
          notAfter: new Date(snap.svid.notAfter).toISOString(),
          serialNumber: snap.svid.serialNumber,
        },
        "identity certificate in use",
      );
    });
    identity.source.on("refresh-failed", ({ error, retryInMs }) => {
      // Only a certificate that was loaded can keep serving; before the first one the proxy
      // has none and stays unready.
      if (identity.source.current === undefined) {
        this.logger.warn(
          { spiffeId: identity.id, err: error.message, retryInMs, source: identity.kind },
          "identity certificate not loaded yet; not ready (no mTLS) until one is",
        );
        return;
      }
      this.logger.warn(
        { spiffeId: identity.id, err: error.message, retryInMs, expiresAt: identity.expiresAt },
        "identity certificate renewal failed; the current certificate keeps serving",
      );
    });
    this.metrics.trackTrustAnchors(identity);
    const refreshMs = c.issuer?.bundleRefresh ?? 0;
    if (identity.issuer !== undefined && refreshMs > 0) {
      this.bundleWatch = watchIssuerBundle(identity.source, {
        url: identity.issuer.url,
        ca: identity.issuer.ca,
        intervalMs: refreshMs,
        onChange: ({ added, removed }) =>
          this.logger.info(
            { spiffeId: identity.id, added, removed },
            "trust bundle changed at the issuer; renewing the certificate now",
          ),
        onError: (err) =>
          this.logger.warn(
            { spiffeId: identity.id, err: err.message },
            "trust bundle check at the issuer failed; will retry",
          ),
      });
    }
  }

  private async bind(): Promise<void> {
    const c = this.config;
    this.addresses.admin = hostPort(await this.admin.listen(c.admin.listen));
    try {
      await this.startIdentity();
    } catch (err) {
      await this.shutdown(0);
      throw err;
    }
    const deps = {
      logger: this.logger,
      metrics: this.metrics,
      proxyId: this.proxyId,
      accessLog: c.log.accessLog,
      identity: this.identity,
      material: this.identity?.source,
      kubernetes: () => this.kubernetesDiscovery(),
    };
    try {
      if (c.outbound !== undefined) {
        this.outbound = new Outbound(c.outbound, deps);
        this.addresses.outbound = hostPort(await this.outbound.listener.listen(c.outbound.listen));
        if (c.outbound.tcp.length > 0) this.addresses.tcp = await this.outbound.tcp.listen();
      }
      if (c.inbound !== undefined) {
        this.inbound = new Inbound(c.inbound, deps);
        this.addresses.inbound = hostPort(await this.inbound.listener.listen(c.inbound.listen));
      }
    } catch (err) {
      await this.shutdown(0);
      throw err;
    }
    if (this.options.configFile !== undefined && this.options.watch !== false) {
      this.watcher = new ConfigWatcher(this.options.configFile, () => void this.reloadFromFile());
    }
    this.isReady = true;
    this.logger.info({ ...this.addresses, proxyId: this.proxyId }, "listening");
    this.awaitKubernetesLists();
    void this.warmUp();
  }

  /**
   * Holds `/ready` while a private loopback pair warms the request path (`warmup`), so the
   * first real requests run optimized code. The listeners serve meanwhile; only readiness
   * waits, at most `warmup.timeout`.
   */
  private async warmUp(): Promise<void> {
    const w = this.config.warmup;
    if (w.requests === 0) {
      this.warmedUp = true;
      return;
    }
    const result = await warmUpPipeline({
      requests: w.requests,
      timeoutMs: w.timeout,
      identity: this.identity,
      outbound: this.config.outbound && { meshHttp1: this.config.outbound.meshHttp1 },
      inbound: this.config.inbound !== undefined,
    });
    this.warmedUp = true;
    const summary = {
      outbound: result.outbound,
      inbound: result.inbound,
      ms: result.ms,
      mtls: result.mtls,
    };
    if (result.failed > 0)
      this.logger.warn(
        { ...summary, err: result.error },
        "warm-up failed; ready anyway (the first requests run unoptimized code)",
      );
    else if (result.timedOut)
      this.logger.info(
        { ...summary, timeoutMs: w.timeout },
        "warm-up stopped at warmup.timeout; ready",
      );
    else this.logger.info(summary, "warmed up; ready");
  }

  /**
   * Holds `/ready` until every `discovery.kubernetes` Service of the config has its first
   * list (its watches started with the config, not at the first request), as Linkerd's proxy
   * resolves before it serves; at most `kubernetes.readyTimeout`, after which the proxy is
   * ready anyway (an unreachable API server must not keep it out of service forever) and
   * says which Services are still unlisted.
   */
  private awaitKubernetesLists(): void {
    const pending = this.outbound?.unsyncedDiscovery() ?? [];
    if (pending.length === 0) {
      this.discoveryListed = true;
      return;
    }
    const timeoutMs = this.config.kubernetes?.readyTimeout ?? KUBERNETES_READY_TIMEOUT;
    const since = performance.now();
    this.logger.info(
      { services: pending, timeoutMs },
      "waiting for the first Kubernetes endpoint lists before ready",
    );
    this.discoveryTimer = setTimeout(() => {
      this.discoveryTimer = undefined;
      if (this.discoveryListed) return;
      this.discoveryListed = true;
      this.recheckDiscovery = undefined;
      this.logger.warn(
        { services: this.outbound?.unsyncedDiscovery() ?? [], timeoutMs },
        "kubernetes.readyTimeout expired before the first Kubernetes endpoint lists; ready anyway: requests to these services wait up to failFast for endpoints, then get 503, until the lists come in",
      );
    }, timeoutMs);
    this.discoveryTimer.unref();
    const check = (): void => {
      if (this.discoveryListed || this.shuttingDown !== undefined) return;
      // Re-read the backends each time: a reload may have added or removed Services.
      if ((this.outbound?.unsyncedDiscovery() ?? []).length > 0) {
        void this.outbound?.discoverySynced().then(check);
        return;
      }
      this.discoveryListed = true;
      this.recheckDiscovery = undefined;
      clearTimeout(this.discoveryTimer);
      this.discoveryTimer = undefined;
      this.logger.info(
        { services: pending, ms: Math.round(performance.now() - since) },
        "Kubernetes endpoints listed; ready",
      );
    };
    this.recheckDiscovery = check;
    void this.outbound?.discoverySynced().then(check);
  }

  /**
   * The one Kubernetes discovery of this proxy (one watch per Service, shared by every backend
   * naming it), created when the config first names a `discovery.kubernetes` Service (at
   * start, or the reload that adds one): backends start their Service's watches with the
   * config, not at the first request. The API server config loads lazily
   * (in-cluster in a pod, else the kubeconfig) and is retried with the watches' backoff; the
   * trust domain is the identity's, so endpoints carry their Pods' SPIFFE IDs when the proxy
   * has an identity. Both are fixed at first use: changing `kubernetes` needs a restart.
   */
  private kubernetesDiscovery(): { discovery: KubernetesDiscovery; meshed: boolean } {
    const trustDomain = this.identity?.trustDomain;
    if (this.kubernetes === undefined) {
      const k = (this.applying ?? this.config).kubernetes;
      const options: { kubeconfig?: string; context?: string } = {};
      if (k?.kubeconfig !== undefined) options.kubeconfig = resolve(k.kubeconfig);
      if (k?.context !== undefined) options.context = k.context;
      this.kubernetes = new KubernetesDiscovery({
        api: () => defaultKubeApi(options),
        ...(trustDomain !== undefined ? { trustDomain } : {}),
      });
    }
    return { discovery: this.kubernetes, meshed: trustDomain !== undefined };
  }

  /** The effective configuration. */
  get effectiveConfig(): ProxyConfig {
    return this.config;
  }

  /**
   * Applies a new configuration live. Returns warnings for settings that need a restart;
   * everything else (routes, splits, endpoints, retries, timeouts, log level) applies now.
   */
  reload(next: ProxyConfig): string[] {
    const warnings: string[] = [];
    const cur = this.config;
    if (next.admin.listen !== cur.admin.listen)
      warnings.push("admin.listen changes need a restart");
    if ((next.inbound === undefined) !== (cur.inbound === undefined))
      warnings.push("adding or removing inbound needs a restart");
    if ((next.outbound === undefined) !== (cur.outbound === undefined))
      warnings.push("adding or removing outbound needs a restart");
    if (this.kubernetes !== undefined && apiAccess(next.kubernetes) !== apiAccess(cur.kubernetes))
      warnings.push("kubernetes (API server access) changes need a restart");
    const identityWarning = identityReloadWarning(cur.identity, next.identity);
    if (identityWarning !== undefined) warnings.push(identityWarning);
    this.applying = next;
    try {
      if (next.outbound !== undefined && this.outbound !== undefined)
        warnings.push(...this.outbound.update(next.outbound));
    } finally {
      this.applying = undefined;
    }
    if (next.inbound !== undefined && this.inbound !== undefined)
      warnings.push(...this.inbound.update(next.inbound));
    // Services a reload adds start their watches now (their backends hold them); those it
    // removes stop theirs. Still waiting for the first lists: wait for the new set.
    this.recheckDiscovery?.();
    this.logger.level = next.log.level;
    // The identity in use stays what it was until a restart; /config and the next
    // reload compare against what actually runs.
    this.config = identityWarning === undefined ? next : { ...next, identity: cur.identity };
    return warnings;
  }

  /**
   * Re-reads the config file and applies it. An invalid file is rejected with every
   * problem logged, and the running config stays. Resolves to whether it was applied.
   */
  async reloadFromFile(): Promise<boolean> {
    const file = this.options.configFile;
    if (file === undefined || this.shuttingDown !== undefined) return false;
    let next: ProxyConfig;
    try {
      next = await loadConfigFile(file, this.options.env ?? process.env);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String(err)];
      this.logger.error({ file, problems }, "config reload rejected; keeping the running config");
      return false;
    }
    if (JSON.stringify(next) === JSON.stringify(this.config)) return true;
    try {
      const warnings = this.reload(next);
      for (const w of warnings) this.logger.warn({ file }, w);
      this.logger.info({ file }, "config reloaded");
      return true;
    } catch (err) {
      this.logger.error(
        { file, err: (err as Error).message },
        "config reload failed; keeping the running config",
      );
      return false;
    }
  }

  /**
   * Graceful shutdown: not ready, stop accepting, let requests in flight finish within the
   * grace period, close idle keep-alive connections and GOAWAY h2 sessions, then close the
   * admin server. Idempotent.
   */
  shutdown(graceMs = this.config.shutdown.gracePeriod): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.isReady = false;
      clearTimeout(this.discoveryTimer);
      this.watcher?.close();
      this.logger.info({ graceMs }, "shutting down");
      await Promise.all([this.outbound?.close(graceMs), this.inbound?.close(graceMs)]);
      await this.admin.close();
      this.bundleWatch?.close();
      this.kubernetes?.close();
      this.identity?.close();
      this.metrics.close();
      this.logger.info("shutdown complete");
      this.markClosed();
    })();
    return this.shuttingDown;
  }
}
