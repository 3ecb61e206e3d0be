import net from "node:net";
import { type IdentityMaterial, negotiatedGroup } from "@mesh/tls-identity";
import { formatHostPort, parseHostPort } from "../config/address.js";
import type { TcpRouteConfig } from "../config/schema.js";
import type { ProxyLogger } from "../log.js";
import type { ProxyMetrics } from "../metrics/proxy-metrics.js";
import { connectMeshTls } from "../transport/mtls/outbound.js";
import { relayTcp } from "../transport/tcp-relay.js";
import { encodeTransportHeader } from "../transport/transport-header/index.js";

/** Shared services of {@link OutboundTcp}. */
export interface OutboundTcpDeps {
  logger: ProxyLogger;
  metrics: ProxyMetrics;
  /** This proxy's SVID for mTLS to meshed endpoints. */
  material: IdentityMaterial | undefined;
  /** Read per connection, so reloads apply. */
  requireIdentity(): boolean;
}

interface TcpEndpoint {
  host: string;
  port: number;
  address: string;
  identity: string | undefined;
}

function endpointsOf(route: TcpRouteConfig): TcpEndpoint[] {
  const out: TcpEndpoint[] = [];
  for (const e of route.discovery.static ?? []) {
    const address = typeof e === "string" ? e : e.address;
    const hp = parseHostPort(address);
    if (hp === undefined) continue;
    out.push({
      host: hp.host,
      port: hp.port,
      address: formatHostPort(hp.host, hp.port),
      identity: typeof e === "string" ? undefined : e.identity,
    });
  }
  return out;
}

/** One opaque TCP listener: the app connects to `listen`, bytes go to the service. */
class TcpRoute {
  readonly server: net.Server;
  private next = 0;
  private endpoints: TcpEndpoint[];
  private readonly sockets = new Set<net.Socket>();

  constructor(
    public config: TcpRouteConfig,
    private readonly deps: OutboundTcpDeps,
  ) {
    this.endpoints = endpointsOf(config);
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (s) => this.accept(s));
  }

  update(config: TcpRouteConfig): void {
    this.config = config;
    this.endpoints = endpointsOf(config);
  }

  get connections(): number {
    return this.sockets.size;
  }

  private pick(): TcpEndpoint | undefined {
    const eps = this.endpoints;
    if (eps.length === 0) return undefined;
    this.next = (this.next + 1) % eps.length;
    return eps[this.next];
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.once("close", () => this.sockets.delete(client));
    client.on("error", () => undefined);
    const { config, deps } = this;
    const ep = this.pick();
    const listenPort = parseHostPort(config.listen)?.port ?? 0;
    const targetPort = config.targetPort ?? listenPort;
    const log = { direction: "outbound", service: config.name, endpoint: ep?.address };
    if (ep === undefined) {
      deps.logger.warn(log, "opaque connection refused: no endpoint");
      client.resetAndDestroy();
      return;
    }
    const meshed = ep.identity !== undefined && deps.material !== undefined;
    const signals = deps.metrics.signals.tcp({
      direction: "outbound",
      authority: `${config.name}:${targetPort}`,
      tls: meshed,
      serverId: meshed ? ep.identity : undefined,
    });
    const fail = (err: Error) => {
      signals.open();
      signals.close(0, true);
      deps.logger.warn(
        { ...log, err: err.message, reason: (err as { reason?: string }).reason },
        "opaque connection failed",
      );
      if (!client.destroyed) client.resetAndDestroy();
    };
    const relay = (upstream: net.Socket) => {
      void relayTcp(client, upstream, {
        signals,
        idleTimeoutMs: config.idleTimeout,
        logger: deps.logger,
        context: log,
      });
    };
    if (meshed) {
      connectMeshTls(deps.material as IdentityMaterial, {
        host: ep.host,
        port: ep.port,
        expect: ep.identity as string,
        timeoutMs: config.connectTimeout + 5_000,
      }).then((tls) => {
        deps.metrics.tlsConnected(ep.identity as string, negotiatedGroup(tls));
        if (client.destroyed) {
          tls.destroy();
          return;
        }
        tls.write(encodeTransportHeader({ port: targetPort }));
        relay(tls);
      }, fail);
      return;
    }
    if (deps.requireIdentity()) {
      fail(new Error(`${ep.address} has no identity and outbound.requireIdentity is set`));
      return;
    }
    const upstream = net.connect({
      host: ep.host,
      port: ep.port,
      noDelay: true,
      timeout: config.connectTimeout,
    });
    const onTimeout = () => upstream.destroy(new Error(`connect timeout to ${ep.address}`));
    upstream.once("timeout", onTimeout);
    upstream.once("connect", () => {
      upstream.off("timeout", onTimeout);
      upstream.setTimeout(0);
    });
    relay(upstream);
  }

  close(): void {
    this.server.close();
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/**
 * The outbound opaque-TCP listeners (`outbound.tcp`): each is a local port the app
 * connects to as if it were the service (`redis: 127.0.0.1:6379`). Connections go
 * round-robin to the service's endpoints: over mTLS with a transport header naming
 * `targetPort` to an endpoint with an identity (a peer proxy's inbound), in plaintext to
 * one without (refused under `requireIdentity`).
 */
export class OutboundTcp {
  private readonly routes = new Map<string, TcpRoute>();

  constructor(
    routes: readonly TcpRouteConfig[],
    readonly deps: OutboundTcpDeps,
  ) {
    for (const r of routes) this.routes.set(r.name, new TcpRoute(r, deps));
  }

  /** Binds every listener; resolves with `name → host:port`. */
  async listen(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, route] of this.routes) {
      const hp = parseHostPort(route.config.listen);
      if (hp === undefined)
        throw new TypeError(`outbound.tcp: bad listen address ${route.config.listen}`);
      await new Promise<void>((resolve, reject) => {
        route.server.once("error", reject);
        route.server.listen({ host: hp.host, port: hp.port }, () => {
          route.server.off("error", reject);
          resolve();
        });
      });
      const a = route.server.address() as net.AddressInfo;
      out[name] = formatHostPort(a.address, a.port);
    }
    return out;
  }

  /** Applies new endpoints and settings; new or moved listeners need a restart. */
  update(routes: readonly TcpRouteConfig[]): string[] {
    const warnings: string[] = [];
    const names = new Set(routes.map((r) => r.name));
    for (const r of routes) {
      const have = this.routes.get(r.name);
      if (have === undefined || have.config.listen !== r.listen)
        warnings.push(`outbound.tcp ${r.name}: new or moved listeners need a restart`);
      else have.update(r);
    }
    for (const name of this.routes.keys())
      if (!names.has(name))
        warnings.push(`outbound.tcp ${name}: removing listeners needs a restart`);
    return warnings;
  }

  /** Stops accepting; open connections get `graceMs` to finish, then are closed. */
  async close(graceMs: number): Promise<void> {
    for (const r of this.routes.values()) r.close();
    const deadline = performance.now() + graceMs;
    while ([...this.routes.values()].some((r) => r.connections > 0)) {
      if (performance.now() >= deadline) {
        for (const r of this.routes.values()) r.destroyAll();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
