import { createHash } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";

/** What the server saw of one request. */
export interface Seen {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  bodySha256: string;
  bodyBytes: number;
}

/** A response plan: decides per request (n is the 0-based count for this server). */
export type Plan = (ctx: {
  n: number;
  seen: Seen;
  /** For h2c servers this is an http2.Http2ServerResponse (same API for what tests use). */
  res: http.ServerResponse;
  socket: Socket | null;
}) => void | Promise<void>;

export interface TestServer {
  origin: string;
  seen: Seen[];
  close(): Promise<void>;
}

function record(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  done: (seen: Seen) => void,
  readBody = true,
): void {
  const hash = createHash("sha256");
  let bytes = 0;
  const finish = () =>
    done({
      method: req.method ?? "",
      path: req.url ?? "",
      headers: { ...req.headers },
      bodySha256: hash.digest("hex"),
      bodyBytes: bytes,
    });
  if (!readBody) {
    finish();
    return;
  }
  req.on("data", (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  req.on("end", finish);
  req.on("error", () => {});
}

/** An HTTP/1.1 server on 127.0.0.1:0 that records every request (body hashed) and follows `plan`. */
export async function http1Server(
  plan: Plan,
  options: { readBody?: boolean } = {},
): Promise<TestServer> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    record(
      req,
      (s) => {
        const n = seen.length;
        seen.push(s);
        void plan({ n, seen: s, res, socket: req.socket });
      },
      options.readBody ?? true,
    );
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A cleartext HTTP/2 (h2c, prior knowledge) server on 127.0.0.1:0, same contract. */
export async function h2cServer(
  plan: Plan,
  options: { readBody?: boolean } = {},
): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.on("request", (req, res) => {
    record(
      req,
      (s) => {
        const n = seen.length;
        seen.push(s);
        void plan({ n, seen: s, res: res as unknown as http.ServerResponse, socket: null });
      },
      options.readBody ?? true,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

export const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** Fails the first `failures` requests with `status`, then answers 200 "ok". */
export const failFirst =
  (failures: number, status = 503, headers: Record<string, string> = {}): Plan =>
  ({ n, res }) => {
    if (n < failures) {
      res.writeHead(status, { "content-type": "text/plain", ...headers });
      res.end("unavailable");
    } else {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`ok ${n}`);
    }
  };
