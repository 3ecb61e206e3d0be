import { Pool } from "undici";
import type { InboundConfig } from "../config/schema.js";
import { HttpListener } from "../http/listener.js";
import { createRequestPipeline, type RouteInput, type Target } from "../http/serve.js";
import type { ProxyLogger } from "../log.js";
import type { ProxyMetrics } from "../metrics/proxy-metrics.js";

/** Shared services an {@link Inbound} needs. */
export interface InboundDeps {
  logger: ProxyLogger;
  metrics: ProxyMetrics;
  /** This proxy's name in `via` headers. */
  proxyId: string;
  accessLog: boolean;
}

/** Connection pools to the local app, one per protocol, created when first needed. */
class AppClients {
  private h1: Pool | undefined;
  private h2: Pool | undefined;
  readonly origin: string;

  constructor(
    readonly address: string,
    private readonly connectTimeout: number,
  ) {
    this.origin = `http://${address}`;
  }

  get(protocol: "http1" | "h2c"): Pool {
    if (protocol === "h2c") {
      this.h2 ??= new Pool(this.origin, {
        useH2c: true,
        allowH2: true,
        connectTimeout: this.connectTimeout,
        connections: 4,
        pipelining: 100,
      } as Pool.Options);
      return this.h2;
    }
    this.h1 ??= new Pool(this.origin, {
      connectTimeout: this.connectTimeout,
      keepAliveTimeout: 4_000,
    });
    return this.h1;
  }

  /** Closes gracefully: requests in flight finish first. */
  async close(): Promise<void> {
    await Promise.all([this.h1?.close(), this.h2?.close()]);
  }
}

/**
 * The inbound side: accepts HTTP/1.1 and h2c from peers and forwards to the local app,
 * in the protocol the config asks for (`auto` mirrors the client's).
 */
export class Inbound {
  readonly listener: HttpListener;
  private config: InboundConfig;
  private app: AppClients;

  constructor(config: InboundConfig, deps: InboundDeps) {
    this.config = config;
    this.app = new AppClients(config.app, config.connectTimeout);
    const pipeline = createRequestPipeline({
      direction: "inbound",
      pseudonym: `${deps.proxyId}-inbound`,
      maxConcurrentRequests: () => this.config.maxConcurrentRequests,
      logger: deps.logger,
      accessLog: deps.accessLog,
      metrics: deps.metrics,
      draining: () => this.listener.draining,
      resolve: (input) => this.resolve(input),
    });
    this.listener = new HttpListener({
      name: "inbound",
      limits: config.limits,
      logger: deps.logger,
      handler: pipeline.handle,
    });
  }

  private resolve(input: RouteInput): Target {
    const c = this.config;
    const protocol = c.appProtocol === "auto" ? (input.h2 ? "h2c" : "http1") : c.appProtocol;
    return {
      dispatcher: this.app.get(protocol),
      origin: this.app.origin,
      timeoutMs: c.timeout.request,
      idleTimeoutMs: c.timeout.idle,
    };
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
    if (next.app !== this.config.app || next.connectTimeout !== this.config.connectTimeout) {
      const old = this.app;
      this.app = new AppClients(next.app, next.connectTimeout);
      void old.close();
    }
    this.config = next;
    return warnings;
  }

  /** Stops accepting, drains, then closes app connections. */
  async close(graceMs: number): Promise<void> {
    await this.listener.close(graceMs);
    await this.app.close();
  }
}
