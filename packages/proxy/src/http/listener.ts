import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { parseHostPort } from "../config/address.js";
import type { LimitsConfig } from "../config/schema.js";
import type { ProxyLogger } from "../log.js";
import { sniffSocket } from "../transport/sniff.js";
import type { IncomingRequest } from "./body.js";
import { ProxyError, respondWithError } from "./errors.js";
import type { OutgoingResponse } from "./forward.js";
import { H2Exchange, serveStream } from "./h2-exchange.js";
import { guardRapidReset } from "./rapid-reset.js";

/** Handles one request that passed the listener's limits. */
export type RequestHandler = (req: IncomingRequest, res: OutgoingResponse) => void;

/** Options of an {@link HttpListener}. */
export interface HttpListenerOptions {
  /** Name for logs (`inbound`, `outbound`). */
  name: string;
  limits: LimitsConfig;
  logger: ProxyLogger;
  handler: RequestHandler;
  /**
   * Takes over each accepted connection instead of the built-in HTTP detection (the
   * inbound side: TLS, authorization, opaque TCP). It hands HTTP connections back with
   * {@link HttpListener.serveHttp1} / {@link HttpListener.serveHttp2}.
   */
  route?: ((socket: net.Socket) => void) | undefined;
}

/** Per-connection facts a router attaches to a connection it hands to the HTTP servers. */
export type ConnectionInfo = object;

/**
 * A plaintext listener that accepts raw TCP connections, detects the protocol from the
 * first bytes (HTTP/2 prior knowledge or HTTP/1.x; TLS is recognised for the mTLS stage)
 * and hands each connection to an HTTP/1.1 or HTTP/2 server with hardening limits. Owns
 * graceful shutdown: stop accepting, GOAWAY h2 sessions, close idle keep-alive
 * connections, let requests in flight finish, then force-close after the grace period.
 */
export class HttpListener {
  /** The HTTP/1.1 server that connections detected as HTTP/1 are given to. */
  readonly h1: http.Server;
  /** The HTTP/2 server that connections starting with the h2 preface are given to. */
  readonly h2: http2.Http2Server;
  private readonly tcp: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly opts: HttpListenerOptions;
  private drainingFlag = false;
  /** Router-supplied facts, by HTTP/1 socket and by HTTP/2 session. */
  private readonly infos = new WeakMap<object, ConnectionInfo>();
  private pendingInfo: ConnectionInfo | undefined;

  constructor(opts: HttpListenerOptions) {
    this.opts = opts;
    const { limits } = opts;
    const handle = this.handle;
    const serveExchange = (exchange: H2Exchange): void => opts.handler(exchange, exchange);
    this.h1 = http.createServer(
      {
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: limits.headersTimeout,
        requestTimeout: limits.requestTimeout,
        keepAliveTimeout: limits.idleTimeout,
        connectionsCheckingInterval: Math.max(
          50,
          Math.min(1_000, Math.floor(limits.headersTimeout / 4)),
        ),
        noDelay: true,
      },
      handle,
    );
    // The HTTP/1.1 server never listens itself (connections are handed to it), but its
    // connection tracking (headers/request timeouts, closeIdleConnections) starts on
    // 'listening': start it now.
    this.h1.emit("listening");
    // One more than allowed so that an excess is visible (node truncates silently).
    this.h1.maxHeadersCount = limits.maxHeaderCount + 1;
    this.h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
      opts.logger.debug(
        { listener: opts.name, err: err.code ?? err.message },
        "rejected client connection",
      );
      if (socket.writable && !socket.destroyed) {
        const status =
          err.code === "HPE_HEADER_OVERFLOW"
            ? "431 Request Header Fields Too Large"
            : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
              ? "408 Request Timeout"
              : "400 Bad Request";
        socket.end(
          `HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n${"mesh-proxy-error"}: ${status.slice(4).toLowerCase()}\r\n\r\n`,
        );
      }
      socket.destroy();
    });
    this.h2 = http2.createServer({
      maxHeaderListPairs: limits.maxHeaderCount + 4,
      maxSessionMemory: 32,
      // nghttp2's own reset budget (a burst of 1 000, then 33/s by default) would end a
      // busy client's session for routine cancellations (deadlines, lost hedges: ~140/s
      // at 700 rps with 20 % cancelled). Abuse is judged by guardRapidReset, by share of
      // streams; this stays a backstop that still cuts one read's flood at ~1 000 streams.
      streamResetBurst: 1_000,
      streamResetRate: 1_000,
      settings: {
        maxHeaderListSize: limits.maxHeaderBytes,
        maxConcurrentStreams: limits.maxConcurrentStreams,
      },
    });
    // The core stream API, not the compatibility layer ('request'): see H2Exchange.
    this.h2.on("stream", (stream, headers, _flags, rawHeaders) =>
      serveStream(stream, headers, rawHeaders, serveExchange),
    );
    this.h2.setTimeout(limits.idleTimeout, () => undefined);
    this.h2.on("session", (session: http2.ServerHttp2Session) => {
      // Emitted synchronously inside serveHttp2's emit("connection").
      if (this.pendingInfo !== undefined) this.infos.set(session, this.pendingInfo);
      this.sessions.add(session);
      session.on("close", () => this.sessions.delete(session));
      session.on("error", () => undefined);
      guardRapidReset(session, this.onRapidReset);
      session.setTimeout(limits.idleTimeout, () => session.close());
      if (this.drainingFlag) session.close();
    });
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.tcp.maxConnections = limits.maxConnections;
  }

  private readonly onRapidReset = (
    session: http2.ServerHttp2Session,
    streams: number,
    resets: number,
  ): void => {
    this.opts.logger.warn(
      { listener: this.opts.name, remote: session.socket?.remoteAddress, streams, resets },
      "closing an HTTP/2 connection that reset most of its streams (rapid reset): GOAWAY ENHANCE_YOUR_CALM",
    );
  };

  /** True once shutdown started: responses ask HTTP/1.1 clients to close. */
  get draining(): boolean {
    return this.drainingFlag;
  }

  /** Binds `host:port` (port 0 picks a free one). */
  listen(address: string): Promise<AddressInfo> {
    const hp = parseHostPort(address);
    if (hp === undefined)
      return Promise.reject(
        new TypeError(`listen: expected host:port, got ${JSON.stringify(address)}`),
      );
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.tcp.once("error", onError);
      this.tcp.listen({ host: hp.host, port: hp.port }, () => {
        this.tcp.off("error", onError);
        resolve(this.tcp.address() as AddressInfo);
      });
    });
  }

  /** The bound address. */
  address(): AddressInfo {
    return this.tcp.address() as AddressInfo;
  }

  /** Open client connections (all protocols). */
  get connections(): number {
    return this.sockets.size;
  }

  private accept(socket: net.Socket): void {
    if (this.drainingFlag) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
    if (this.opts.route !== undefined) {
      this.opts.route(socket);
      return;
    }
    sniffSocket(socket, { timeoutMs: Math.max(1, this.opts.limits.detectTimeout) }).then(
      ({ protocol, reason }) => {
        if (socket.destroyed) return;
        if (protocol === "h2") {
          this.h2.emit("connection", socket);
        } else if (protocol === "http1" || (protocol === "opaque" && reason !== "timeout")) {
          // Bytes that are not HTTP go to the HTTP/1 parser too: it answers 400 (or 431).
          this.h1.emit("connection", socket);
          socket.resume();
        } else {
          // TLS on a plaintext listener, silence past the detect timeout, or gone.
          this.opts.logger.debug(
            { listener: this.opts.name, protocol, reason },
            "connection closed during protocol detection",
          );
          socket.destroy();
        }
      },
    );
  }

  /** Serves an HTTP/1.x connection (plain or decrypted TLS), its first bytes unread. */
  serveHttp1(socket: net.Socket, info?: ConnectionInfo): void {
    if (info !== undefined) this.infos.set(socket, info);
    this.h1.emit("connection", socket);
    socket.resume();
  }

  /** Serves an HTTP/2 connection (plain or decrypted TLS), its first bytes unread. */
  serveHttp2(socket: net.Socket, info?: ConnectionInfo): void {
    this.pendingInfo = info;
    try {
      this.h2.emit("connection", socket);
    } finally {
      this.pendingInfo = undefined;
    }
  }

  /** The facts attached to the connection a request arrived on, if any. */
  connectionInfo(req: IncomingRequest): ConnectionInfo | undefined {
    if (req instanceof H2Exchange) {
      const session = req.stream.session;
      return session === undefined ? undefined : this.infos.get(session);
    }
    return this.infos.get(req.socket);
  }

  private readonly handle = (req: IncomingRequest, res: OutgoingResponse): void => {
    const limits = this.opts.limits;
    if (req.httpVersionMajor === 1 && req.rawHeaders.length / 2 > limits.maxHeaderCount) {
      respondWithError(
        res,
        new ProxyError("MESH_PROXY_HEADERS_TOO_LARGE", "too many request headers"),
        false,
        true,
      );
      return;
    }
    this.opts.handler(req, res);
  };

  /**
   * Graceful shutdown: stops accepting, sends GOAWAY on h2 sessions, closes idle HTTP/1.1
   * connections as they become idle, waits for everything to close, and destroys what is
   * left after `graceMs`.
   */
  async close(graceMs: number): Promise<void> {
    if (!this.drainingFlag) {
      this.drainingFlag = true;
      this.tcp.close();
    }
    for (const s of this.sessions) if (!s.closed) s.close();
    const closed = new Promise<void>((resolve) => {
      const check = () => {
        this.h1.closeIdleConnections();
        if (this.sockets.size === 0) {
          clearInterval(poll);
          resolve();
        }
      };
      const poll = setInterval(check, 25);
      check();
    });
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    });
    const timedOut = await Promise.race([closed.then(() => false), expired]);
    clearTimeout(timer);
    if (timedOut) {
      this.opts.logger.warn(
        { listener: this.opts.name, connections: this.sockets.size },
        "grace period over, closing remaining connections",
      );
      for (const s of this.sessions) s.destroy();
      for (const s of this.sockets) s.destroy();
      await closed;
    }
    this.h1.close();
    this.h2.close();
  }
}
