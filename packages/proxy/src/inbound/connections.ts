import net from "node:net";
import { formatHostPort, parseHostPort } from "../config/address.js";
import type { InboundConfig } from "../config/schema.js";
import type { HttpListener } from "../http/listener.js";
import type { PeerInfo } from "../http/serve.js";
import type { ProxyLogger } from "../log.js";
import type { ProxyMetrics } from "../metrics/proxy-metrics.js";
import { type InboundTls, MeshTlsError, OPAQUE_ALPN } from "../transport/mtls/index.js";
import { sniffSocket } from "../transport/sniff.js";
import { relayTcp } from "../transport/tcp-relay.js";
import { readTransportHeader } from "../transport/transport-header/index.js";
import type { AuthzPolicy } from "./authz/index.js";

/** What the inbound connection router reads per connection (live: reloads apply). */
export interface InboundConnectionState {
  config(): InboundConfig;
  policy(): AuthzPolicy;
  /** mTLS termination; absent when the proxy has no identity. */
  tls: InboundTls | undefined;
  listener(): HttpListener;
  metrics: ProxyMetrics;
  logger: ProxyLogger;
}

/**
 * The inbound listener's connection router: peeks the first bytes of each connection.
 * A TLS ClientHello is terminated as mTLS (client certificate required) and, by ALPN,
 * served as HTTP/2, HTTP/1.1 or an opaque TCP stream (transport header first); plaintext
 * HTTP goes to the HTTP servers (the policy decides per request); anything else is
 * forwarded to the app as TCP if the policy admits an unauthenticated client.
 */
export class InboundConnections {
  constructor(private readonly s: InboundConnectionState) {}

  /** Routes one accepted connection. Never throws. */
  readonly route = (socket: net.Socket): void => {
    void this.#route(socket);
  };

  async #route(socket: net.Socket): Promise<void> {
    const { s } = this;
    const limits = s.config().limits;
    const base = {
      remoteAddress: socket.remoteAddress,
      port: socket.localPort ?? 0,
    };
    const sniffed = await sniffSocket(socket, { timeoutMs: limits.detectTimeout });
    switch (sniffed.protocol) {
      case "closed":
        return;
      case "h2":
        s.listener().serveHttp2(socket, { ...base, clientId: undefined, tls: false });
        return;
      case "http1":
        s.listener().serveHttp1(socket, { ...base, clientId: undefined, tls: false });
        return;
      case "opaque":
        this.#plainTcp(socket, { ...base, clientId: undefined, tls: false });
        return;
      default:
        break;
    }
    if (s.tls === undefined) {
      s.metrics.tlsRefused("no identity");
      s.logger.debug({ ...base }, "TLS connection refused: this proxy has no identity");
      socket.destroy();
      return;
    }
    let terminated: Awaited<ReturnType<InboundTls["terminate"]>>;
    try {
      terminated = await s.tls.terminate(socket);
    } catch (err) {
      const reason = err instanceof MeshTlsError ? err.reason : "tls handshake failed";
      s.metrics.tlsRefused(reason);
      s.logger.info({ ...base, reason, err: (err as Error).message }, "mTLS client refused");
      return;
    }
    const tlsSocket = terminated.socket;
    tlsSocket.on("error", () => undefined);
    const peer: PeerInfo = { ...base, clientId: terminated.peerId.toString(), tls: true };
    if (terminated.alpn === OPAQUE_ALPN) void this.#meshedTcp(tlsSocket, peer);
    else if (terminated.alpn === "h2") s.listener().serveHttp2(tlsSocket, peer);
    else s.listener().serveHttp1(tlsSocket, peer);
  }

  /** A plaintext connection that is not HTTP: raw TCP to the app, if the policy admits it. */
  #plainTcp(socket: net.Socket, peer: PeerInfo): void {
    const config = this.s.config();
    const app = parseHostPort(config.app);
    if (app === undefined) {
      socket.destroy();
      return;
    }
    this.#forward(socket, peer, app.port, config.app);
  }

  /** An mTLS opaque stream: transport header, then raw TCP to the named local port. */
  async #meshedTcp(tlsSocket: net.Socket, peer: PeerInfo): Promise<void> {
    const config = this.s.config();
    let port: number;
    try {
      port = (await readTransportHeader(tlsSocket, { timeoutMs: config.limits.detectTimeout }))
        .port;
    } catch (err) {
      this.s.logger.info(
        { clientId: peer.clientId, err: (err as Error).message },
        "opaque connection refused: bad transport header",
      );
      tlsSocket.destroy();
      return;
    }
    const target = opaqueTarget(config, port);
    if (target === undefined) {
      this.s.logger.info(
        { clientId: peer.clientId, port },
        "opaque connection refused: target port is not an opaque port of this proxy",
      );
      tlsSocket.destroy();
      return;
    }
    this.#forward(tlsSocket, peer, port, target);
  }

  #forward(client: net.Socket, peer: PeerInfo, port: number, target: string): void {
    const { s } = this;
    const decision = s.policy().authorize({
      clientId: peer.clientId,
      remoteAddress: peer.remoteAddress,
      port,
      protocol: "tcp",
    });
    if (!decision.allowed) {
      s.logger.info(
        {
          clientId: peer.clientId,
          remoteAddress: peer.remoteAddress,
          port,
          reason: decision.reason,
        },
        "opaque connection denied by policy",
      );
      client.destroy();
      return;
    }
    const hp = parseHostPort(target);
    if (hp === undefined) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: hp.host, port: hp.port, noDelay: true });
    const config = s.config();
    void relayTcp(client, upstream, {
      signals: s.metrics.signals.tcp({
        direction: "inbound",
        authority: target,
        tls: peer.tls,
        clientId: peer.clientId,
      }),
      idleTimeoutMs: config.tcpIdleTimeout,
      logger: s.logger,
      context: { direction: "inbound", target, clientId: peer.clientId },
    });
  }
}

/**
 * Where an opaque stream for `port` goes: an explicit `inbound.ports` entry, else the
 * app's host at that port when the port is listed in `opaquePorts` or is the app's own
 * port. Anything else is refused, so a meshed client cannot reach arbitrary local ports.
 */
export function opaqueTarget(config: InboundConfig, port: number): string | undefined {
  const mapped = config.ports[String(port)];
  if (mapped !== undefined) return mapped;
  const app = parseHostPort(config.app);
  if (app === undefined) return undefined;
  if (port !== app.port && !config.opaquePorts.includes(port)) return undefined;
  return formatHostPort(app.host, port);
}
