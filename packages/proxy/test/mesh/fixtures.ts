import type { KeyObject, X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import {
  CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  type Issuer,
  parseSpiffeId,
  type SpiffeId,
  type TrustBundle,
} from "@mesh/tls-identity";
import { afterAll } from "vitest";
import { h1App, launch, type ProxyProcess, tempDir } from "../helpers.js";

export const TD = "example.org";
export const WEB = "spiffe://example.org/ns/default/sa/web";
export const BOOKS = "spiffe://example.org/ns/default/sa/books";
export const EVIL = "spiffe://example.org/ns/default/sa/evil";

/** A trust domain with an issuer on 127.0.0.1 and a token file per workload. */
export class Pki {
  readonly dir = tempDir();
  readonly anchor = createTrustAnchor({ trustDomain: TD });
  /** The CA the issuer signs with; see {@link Pki.useAuthority}. */
  ca: CertificateAuthority = this.anchor.createAuthority();
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

  /**
   * Restarts the issuer (same port) signing with `ca` and handing out `bundle` (default
   * the CA's own), e.g. the steps of a trust-anchor rotation.
   */
  async useAuthority(ca: CertificateAuthority, bundle?: TrustBundle): Promise<void> {
    this.ca =
      bundle === undefined
        ? ca
        : CertificateAuthority.fromPem({ trustDomain: TD, ...ca.toPem(), bundlePem: bundle.pem });
    await this.stop();
    await this.start();
  }

  /** The identity section for a workload (registers its token); `issuer` adds issuer fields. */
  identity(
    id: string,
    renewal?: Record<string, unknown>,
    issuer: Record<string, unknown> = {},
  ): Record<string, unknown> {
    const token = `token-${id.split("/").pop()}-${this.ids.size}`;
    this.ids.set(token, parseSpiffeId(id));
    const tokenFile = join(this.dir, `${token}.txt`);
    writeFileSync(tokenFile, token);
    return {
      trustDomain: TD,
      id,
      issuer: { url: this.url, tokenFile, ...issuer },
      ...(renewal ? { renewal } : {}),
    };
  }
}

/** Starts a proxy from a config object (admin/inbound/outbound on port 0, quiet logs). */
export function proxy(config: Record<string, unknown>): Promise<ProxyProcess> {
  return launch({ log: { level: "info" }, shutdown: { gracePeriod: "2s" }, ...config });
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

/**
 * An HTTP/1.1 app that echoes what it received as JSON; `/trailers` answers a chunked
 * body with an `x-checksum` trailer instead.
 */
export function echoApp(): Promise<{ address: string; close(): Promise<void> }> {
  return h1App((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/trailers") {
        res.writeHead(200, { trailer: "x-checksum" });
        res.write("chunked ");
        res.write("body");
        res.addTrailers({ "x-checksum": "abc" });
        res.end();
        return;
      }
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

/** A TCP echo server (the opaque "app" behind books). */
export async function tcpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** One short opaque TCP exchange through `address`: resolves true when the echo came back. */
export function tcpRoundTrip(address: string, payload: string): Promise<boolean> {
  const [host, port] = address.split(":") as [string, string];
  return new Promise((resolve) => {
    let got = "";
    const s = net.connect(Number(port), host, () => s.write(payload));
    s.on("data", (d) => {
      got += d.toString();
      if (got === payload) s.end();
    });
    s.on("error", () => resolve(false));
    s.on("close", () => resolve(got === payload));
  });
}

/** Renewal at half the remaining lifetime, fast retries: for certificates living seconds. */
export const RENEWAL = { fraction: 0.5, min: "200ms", retryInitial: "200ms", retryMax: "1s" };

/**
 * Starts books (inbound: HTTP app + TCP echo on opaque port 7000) and web (outbound via a
 * relay that counts proxy-to-proxy connections), each with its `identity` config section.
 */
export async function meshPair(
  identity: { books: unknown; web: unknown },
  app: string,
  echoPort: number,
) {
  const books = await proxy({
    identity: identity.books,
    inbound: {
      listen: "127.0.0.1:0",
      app,
      opaquePorts: [7000],
      ports: { "7000": `127.0.0.1:${echoPort}` },
      policy: { default: "all-authenticated" },
    },
  });
  const relay = new CountingRelay(books.addresses.inbound as string);
  const viaRelay = await relay.listen();
  const web = await proxy({
    identity: identity.web,
    outbound: {
      listen: "127.0.0.1:0",
      services: [
        { name: "books", discovery: { static: [{ address: viaRelay, identity: BOOKS }] } },
      ],
      tcp: [
        {
          name: "echo",
          listen: "127.0.0.1:0",
          targetPort: 7000,
          discovery: { static: [{ address: books.addresses.inbound, identity: BOOKS }] },
        },
      ],
    },
  });
  return {
    books,
    web,
    relay,
    tcp: web.addresses.tcp?.echo as string,
  };
}

/** Both proxies' identity sections from `pki`'s issuer; `issuer` adds fields to both. */
export function issuedIdentities(pki: Pki, issuer: Record<string, unknown> = {}) {
  return {
    books: pki.identity(BOOKS, RENEWAL, issuer),
    web: pki.identity(WEB, RENEWAL, issuer),
  };
}

/** Registers cleanups that run in reverse order after the file's tests; returns `defer`. */
export function cleanupAfterAll(): (...fns: (() => unknown)[]) => void {
  const list: (() => unknown)[] = [];
  afterAll(async () => {
    for (const c of list.reverse()) await c();
  });
  return (...fns) => {
    list.push(...fns);
  };
}

/**
 * Starts `pki`'s issuer, an HTTP echo app, a TCP echo server and {@link meshPair}, waits
 * until both proxies are ready, and hands every cleanup to `defer`.
 */
export async function startMesh(
  pki: Pki,
  defer: (...fns: (() => unknown)[]) => void,
  issuer: Record<string, unknown> = {},
) {
  await pki.start();
  defer(() => pki.stop());
  const app = await echoApp();
  const echo = await tcpEcho();
  defer(
    () => app.close(),
    () => echo.close(),
  );
  const pair = await meshPair(issuedIdentities(pki, issuer), app.address, echo.port);
  defer(
    () => pair.books.stop(),
    () => pair.web.stop(),
    () => pair.relay.close(),
  );
  await Promise.all([ready(pair.books), ready(pair.web)]);
  return pair;
}

/**
 * Continuous traffic through web's sidecar until {@link MeshLoad.stop}: `httpLoops`
 * keep-alive HTTP/1.1 loops to books, and (with `tcp`) a new opaque mTLS connection every
 * `tcpGapMs`, each a fresh handshake with whatever certificates and bundle are current.
 * Failures are collected, never thrown.
 */
export class MeshLoad {
  readonly failures: string[] = [];
  http = 0;
  tcp = 0;
  #stopped = false;
  readonly #agent: http.Agent;
  readonly #done: Promise<unknown>;

  constructor(o: { outbound: string; httpLoops: number; tcp?: string; tcpGapMs?: number }) {
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: o.httpLoops });
    const loops: Promise<void>[] = [];
    for (let i = 0; i < o.httpLoops; i++) loops.push(this.#httpLoop(o.outbound));
    if (o.tcp !== undefined) loops.push(this.#tcpLoop(o.tcp, o.tcpGapMs ?? 50));
    this.#done = Promise.all(loops);
  }

  async #httpLoop(outbound: string): Promise<void> {
    while (!this.#stopped) {
      const r = await get(outbound, "books", "/load", {}, this.#agent).catch((e: Error) => ({
        status: 0,
        body: e.message,
      }));
      if (r.status === 200) this.http++;
      else this.failures.push(`http ${r.status} ${r.body}`);
    }
  }

  async #tcpLoop(address: string, gapMs: number): Promise<void> {
    for (let i = 0; !this.#stopped; i++) {
      if (await tcpRoundTrip(address, `ping-${i}`)) this.tcp++;
      else this.failures.push(`tcp ${i}`);
      await new Promise((r) => setTimeout(r, gapMs));
    }
  }

  /** Stops after the exchanges in progress finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
    this.#agent.destroy();
  }
}

/**
 * Connects to `target`'s inbound listener with a certificate `stale` issued under a root the
 * proxy no longer trusts, and checks that the handshake is refused (nothing answered) and
 * counted in `inbound_tls_refused_total`.
 */
export async function expectStaleClientRefused(
  target: ProxyProcess,
  stale: { chainPem: string; privateKey: KeyObject },
  serverCa: string,
): Promise<void> {
  const refused = async () =>
    metric((await admin(target, "/metrics")).body, "inbound_tls_refused_total");
  const before = await refused();
  const [host, port] = (target.addresses.inbound as string).split(":") as [string, string];
  const outcome = await new Promise<string>((resolve) => {
    let got = "";
    const s = tls.connect({
      host,
      port: Number(port),
      cert: stale.chainPem,
      key: stale.privateKey.export({ type: "pkcs8", format: "pem" }),
      ca: serverCa,
      minVersion: "TLSv1.3",
      checkServerIdentity: () => undefined,
      ALPNProtocols: ["h2"],
    });
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
    });
    s.on("error", (e) => resolve(`error ${e.message}`));
    s.on("close", () => resolve(got.length > 0 ? "answered" : "closed"));
    s.on("secureConnect", () => s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  });
  if (outcome === "answered") throw new Error("a client under the removed root was answered");
  await until(async () => (await refused()) === before + 1, "the stale client counted as refused");
}

/** The documented `anchor` label: first 16 hex digits of the SHA-256 fingerprint. */
export const label = (c: X509Certificate) =>
  c.fingerprint256.replaceAll(":", "").slice(0, 16).toLowerCase();

/** The anchors a proxy trusts now, from `identity_trust_anchor_expiration_timestamp_seconds`. */
export async function trusted(p: ProxyProcess): Promise<string[]> {
  const text = (await admin(p, "/metrics")).body;
  return [
    ...text.matchAll(
      /^identity_trust_anchor_expiration_timestamp_seconds\{[^}]*anchor="([0-9a-f]+)"/gm,
    ),
  ]
    .map((m) => m[1] as string)
    .sort();
}

/** The anchor a proxy's current certificate chains to, from `identity_cert_anchor_info`. */
export async function certAnchor(p: ProxyProcess): Promise<string | undefined> {
  const text = (await admin(p, "/metrics")).body;
  return /^identity_cert_anchor_info\{[^}]*anchor="([0-9a-f]+)"[^}]*\} 1$/m.exec(text)?.[1];
}
