import { writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  type Issuer,
  parseSpiffeId,
  type SpiffeId,
} from "@mesh/tls-identity";
import { type ProxyProcess, startProxy, tempDir, writeConfig } from "../helpers.js";

export const TD = "example.org";
export const WEB = "spiffe://example.org/ns/default/sa/web";
export const BOOKS = "spiffe://example.org/ns/default/sa/books";
export const EVIL = "spiffe://example.org/ns/default/sa/evil";

/** A trust domain with an issuer on 127.0.0.1 and a token file per workload. */
export class Pki {
  readonly dir = tempDir();
  readonly anchor = createTrustAnchor({ trustDomain: TD });
  readonly ca: CertificateAuthority = this.anchor.createAuthority();
  issuer!: Issuer;
  url = "";
  port = 0;
  private readonly ids = new Map<string, SpiffeId>();

  constructor(private readonly svidTtlMs?: number) {}

  /** Starts (or restarts on the same port) the issuer. */
  async start(): Promise<void> {
    const opts: Parameters<typeof createIssuer>[0] = {
      ca: this.ca,
      // Looked up per request, so workloads registered after start are known.
      authenticator: { authenticate: (token: string) => this.ids.get(token) },
    };
    if (this.svidTtlMs !== undefined) opts.svidTtlMs = this.svidTtlMs;
    this.issuer = createIssuer(opts);
    this.url = await this.issuer.listen(this.port, "127.0.0.1");
    this.port = Number(new URL(this.url).port);
  }

  async stop(): Promise<void> {
    await this.issuer.close();
  }

  /** The identity section for a workload (registers its token). */
  identity(id: string, renewal?: Record<string, unknown>): Record<string, unknown> {
    const token = `token-${id.split("/").pop()}-${this.ids.size}`;
    this.ids.set(token, parseSpiffeId(id));
    const tokenFile = join(this.dir, `${token}.txt`);
    writeFileSync(tokenFile, token);
    return {
      trustDomain: TD,
      id,
      issuer: { url: this.url, tokenFile },
      ...(renewal ? { renewal } : {}),
    };
  }
}

/** Starts a proxy from a config object (admin/inbound/outbound on port 0, quiet logs). */
export async function proxy(config: Record<string, unknown>): Promise<ProxyProcess> {
  const dir = tempDir();
  return startProxy(
    writeConfig(dir, {
      admin: { listen: "127.0.0.1:0" },
      log: { level: "info" },
      shutdown: { gracePeriod: "2s" },
      ...config,
    }),
  );
}

/** GETs an admin path of a proxy. */
export async function admin(
  p: ProxyProcess,
  path: string,
): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${p.addresses.admin}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Sum of a Prometheus series' samples whose line contains every fragment. */
export function metric(text: string, name: string, ...fragments: string[]): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (fragments.every((f) => line.includes(f)))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Polls until `check` is true (event-free readiness that has no other signal); 10 s cap. */
export async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for `/ready` to answer 200. */
export function ready(p: ProxyProcess): Promise<void> {
  return until(async () => (await admin(p, "/ready")).status === 200, "/ready");
}

/** A TCP relay that counts the connections crossing it (to count proxy-to-proxy connections). */
export class CountingRelay {
  readonly server: net.Server;
  accepted = 0;
  private readonly sockets = new Set<net.Socket>();
  constructor(private readonly target: string) {
    this.server = net.createServer((client) => {
      this.accepted++;
      const [host, port] = this.target.split(":") as [string, string];
      const up = net.connect(Number(port), host);
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {
          client.destroy();
          up.destroy();
        });
      }
      client.pipe(up).pipe(client);
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** An HTTP/1.1 app that echoes what it received as JSON. */
export async function echoApp(): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          httpVersion: req.httpVersion,
          url: req.url,
          headers: req.headers,
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** One HTTP/1.1 request through an outbound proxy (a fresh agent unless one is given). */
export function get(
  outbound: string,
  host: string,
  path: string,
  headers: Record<string, string> = {},
  agent?: http.Agent,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const [h, p] = outbound.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: h, port: Number(p), path, headers: { host, ...headers }, agent: agent ?? false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}
