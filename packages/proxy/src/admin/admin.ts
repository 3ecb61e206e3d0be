import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseHostPort } from "../config/address.js";

/** What the admin server reports on; implemented by the running proxy. */
export interface AdminSource {
  /** True once listeners are bound and config is loaded, false while draining. */
  ready(): boolean;
  /** Prometheus text and its content type. */
  metrics(): { body: string; contentType: string };
  /** The effective configuration with secrets redacted. */
  config(): unknown;
  /** Per-service endpoints with state, cost, pending, ejection. */
  endpoints(): unknown;
  /** Begins graceful shutdown (POST /shutdown). */
  shutdown(): void;
  /** Whether POST /shutdown is enabled. */
  shutdownEnabled: boolean;
  /** Serves `GET /tap` (live requests as NDJSON; it checks access itself). */
  tap?: { handle(req: http.IncomingMessage, res: http.ServerResponse, query: string): void };
}

/** Whether a socket's peer is on this host (loopback-only admin endpoints). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  type = "text/plain; charset=utf-8",
): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/**
 * The admin server: `/live`, `/ready`, `/metrics`, `/config`, `/endpoints`, `/tap` (live
 * requests; loopback or bearer token), and `POST /shutdown` (loopback clients only).
 */
export class AdminServer {
  private readonly server: http.Server;

  constructor(private readonly source: AdminSource) {
    this.server = http.createServer({ headersTimeout: 5_000, requestTimeout: 10_000 }, (req, res) =>
      this.handle(req, res),
    );
    this.server.keepAliveTimeout = 5_000;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const [path, query = ""] = (req.url ?? "/").split("?", 2);
    const method = req.method ?? "GET";
    const get = method === "GET" || method === "HEAD";
    req.resume();
    switch (path) {
      case "/live":
        if (get) send(res, 200, "live\n");
        else send(res, 405, "method not allowed\n");
        return;
      case "/ready":
        if (!get) {
          send(res, 405, "method not allowed\n");
          return;
        }
        if (this.source.ready()) send(res, 200, "ready\n");
        else send(res, 503, "not ready\n");
        return;
      case "/metrics": {
        if (!get) {
          send(res, 405, "method not allowed\n");
          return;
        }
        const m = this.source.metrics();
        send(res, 200, m.body, m.contentType);
        return;
      }
      case "/config":
        if (!get) {
          send(res, 405, "method not allowed\n");
          return;
        }
        send(res, 200, `${JSON.stringify(this.source.config(), null, 2)}\n`, "application/json");
        return;
      case "/endpoints":
        if (!get) {
          send(res, 405, "method not allowed\n");
          return;
        }
        send(res, 200, `${JSON.stringify(this.source.endpoints(), null, 2)}\n`, "application/json");
        return;
      case "/tap":
        if (method !== "GET") send(res, 405, "method not allowed\n");
        else if (this.source.tap === undefined) send(res, 404, "not found\n");
        else this.source.tap.handle(req, res, query);
        return;
      case "/shutdown":
        if (method !== "POST") {
          send(res, 405, "method not allowed\n");
          return;
        }
        if (!this.source.shutdownEnabled) {
          send(res, 404, "shutdown endpoint disabled\n");
          return;
        }
        if (!isLoopback(req.socket.remoteAddress)) {
          send(res, 403, "shutdown is allowed from loopback only\n");
          return;
        }
        send(res, 202, "shutting down\n");
        this.source.shutdown();
        return;
      default:
        send(res, 404, "not found\n");
        return;
    }
  }

  /** Binds `host:port`. */
  listen(address: string): Promise<AddressInfo> {
    const hp = parseHostPort(address);
    if (hp === undefined) {
      return Promise.reject(
        new TypeError(`admin.listen: expected host:port, got ${JSON.stringify(address)}`),
      );
    }
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host: hp.host, port: hp.port }, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Closes the admin server (after the proxy drained, so /ready stays observable). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
