import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A self-signed P-256 certificate for `dnsName`, made by the real `openssl` CLI. */
export function selfSignedCert(dnsName: string): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), "balancer-tls-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${dnsName}`,
      "-addext",
      `subjectAltName=DNS:${dnsName}`,
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  return { cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")) };
}

/** A fake clock for core tests. */
export class FakeClock {
  t = 0;
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface TestServer {
  address: string;
  port: number;
  hits: number;
  /** Status to answer with; change it live. */
  status: number;
  close(): Promise<void>;
}

/** A real HTTP/1.1 server on 127.0.0.1 that answers with its own address and `status`. */
export async function startServer(
  onRequest?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean | undefined,
): Promise<TestServer> {
  const state = { hits: 0, status: 200 };
  const server = http.createServer((req, res) => {
    state.hits++;
    if (onRequest?.(req, res)) return;
    res.statusCode = state.status;
    res.end(`${port}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    get hits() {
      return state.hits;
    },
    set hits(v: number) {
      state.hits = v;
    },
    get status() {
      return state.status;
    },
    set status(v: number) {
      state.status = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A real cleartext HTTP/2 (h2c) server that reports the protocol it saw. */
export async function startH2Server(): Promise<{ address: string; close(): Promise<void> }> {
  const server = http2.createServer((req, res) => {
    res.end(`h2 ${req.httpVersion} ${req.headers[":authority"]}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
