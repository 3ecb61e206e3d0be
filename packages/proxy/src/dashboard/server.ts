import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseHostPort } from "../config/address.js";
import type { EndpointStat, ProxyStat, TrafficStat } from "../stat/compute.js";
import { ScrapeHistory, scrapeAll, statReport } from "../stat/stat.js";
import type { AdminTarget } from "../stat/target.js";
import { parseTapFilter, tapFilterQuery } from "../tap/filter.js";
import { type ProxyIdentity, type TopologyEdge, type TopologyNode, topology } from "./topology.js";

/** Options of {@link DashboardServer}. */
export interface DashboardOptions {
  /** Admin servers to aggregate. */
  targets: readonly AdminTarget[];
  /** Scrape period, ms (default 2000). */
  intervalMs?: number;
  /** How much history the sparklines show, ms (default 5 minutes). */
  historyMs?: number;
  /** Per-request scrape timeout, ms (default 2000). */
  timeoutMs?: number;
  /** Bearer token for the admins' `/tap` (`admin.tap.token`), if they need one. */
  tapToken?: string | undefined;
}

/** A golden-signal row with its recent history (oldest first, one point per scrape). */
export type HistoryRow<T> = T & {
  readonly key: string;
  readonly history: {
    readonly rps: (number | null)[];
    readonly success: (number | null)[];
    readonly p99: (number | null)[];
  };
};

/** What the page receives on every update (`event: snapshot` on `/events`). */
export interface DashboardSnapshot {
  readonly time: string;
  readonly intervalMs: number;
  readonly proxies: readonly {
    readonly name: string;
    readonly admin: string;
    readonly up: boolean;
    readonly error: string | null;
    readonly identity: string | null;
    readonly traffic: readonly HistoryRow<TrafficStat>[];
    readonly routes: readonly HistoryRow<TrafficStat>[];
    readonly endpoints: readonly EndpointStat[];
  }[];
  readonly nodes: readonly TopologyNode[];
  readonly edges: readonly HistoryRow<TopologyEdge>[];
}

/** The page's files: next to the built CLI in `dist/dashboard/`, or in `src/dashboard/static/`. */
const STATIC_DIRS = [
  new URL("./dashboard/", import.meta.url),
  new URL("./static/", import.meta.url),
];
const FILES: Record<string, string> = {
  "/": "index.html",
  "/index.html": "index.html",
  "/app.js": "app.js",
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
};

async function staticFile(name: string): Promise<Buffer> {
  let last: unknown;
  for (const dir of STATIC_DIRS) {
    try {
      return await readFile(fileURLToPath(new URL(name, dir)));
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** Reads `/config` for the proxy's identity and fixed inbound address; nulls when unknown. */
function proxyIdentity(address: string, timeoutMs: number): Promise<ProxyIdentity | undefined> {
  return new Promise((resolve) => {
    const req = http.get(
      `http://${address}/config`,
      { agent: false, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("error", () => resolve(undefined));
        res.on("end", () => {
          try {
            const c = JSON.parse(body) as {
              identity?: { id?: string };
              inbound?: { listen?: string };
            };
            resolve({ identity: c.identity?.id ?? null, inbound: c.inbound?.listen ?? null });
          } catch {
            resolve(undefined);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

/**
 * `mesh-proxy dashboard`: scrapes the admins every interval (the `mesh-proxy stat`
 * scraper and maths), keeps a few minutes of history per row, and serves a page that
 * shows it live over server-sent events, plus a live tap relayed from the admins' `/tap`.
 * An admin that stops answering is shown down; the others keep updating.
 */
export class DashboardServer {
  readonly #server: http.Server;
  readonly #targets: readonly AdminTarget[];
  readonly #intervalMs: number;
  readonly #points: number;
  readonly #timeoutMs: number;
  readonly #tapToken: string | undefined;
  readonly #scrapes: ScrapeHistory;
  readonly #history = new Map<
    string,
    { rps: (number | null)[]; success: (number | null)[]; p99: (number | null)[] }
  >();
  readonly #info = new Map<string, ProxyIdentity>();
  readonly #clients = new Set<http.ServerResponse>();
  #latest: DashboardSnapshot | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;

  constructor(options: DashboardOptions) {
    this.#targets = options.targets;
    this.#intervalMs = options.intervalMs ?? 2_000;
    this.#points = Math.max(2, Math.ceil((options.historyMs ?? 300_000) / this.#intervalMs));
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#tapToken = options.tapToken;
    this.#scrapes = new ScrapeHistory(this.#targets.length, this.#intervalMs);
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
  }

  /** The latest snapshot (undefined before the first scrape). */
  get snapshot(): DashboardSnapshot | undefined {
    return this.#latest;
  }

  /** Binds `host:port`, takes a first scrape, then scrapes every interval. Resolves to the URL. */
  async listen(address: string): Promise<string> {
    const hp = parseHostPort(address);
    if (hp === undefined)
      throw new TypeError(`--listen: expected host:port, got ${JSON.stringify(address)}`);
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: hp.host, port: hp.port }, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    // A first snapshot at once (totals, no rates yet): the page has something to show.
    await this.#tick();
    this.#schedule();
    const a = this.#server.address() as AddressInfo;
    const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}/`;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#ticking = this.#tick().finally(() => this.#schedule());
    }, this.#intervalMs);
  }

  async #tick(): Promise<void> {
    const after = await scrapeAll(this.#targets, { timeoutMs: this.#timeoutMs });
    await Promise.all(
      after.map(async (a) => {
        // Identity and inbound address change only with a restart: read once per coming up.
        if (a.error !== undefined) this.#info.delete(a.target.name);
        else if (!this.#info.has(a.target.name)) {
          const i = await proxyIdentity(a.target.address, this.#timeoutMs);
          if (i !== undefined) this.#info.set(a.target.name, i);
        }
      }),
    );
    const report = statReport(this.#scrapes.push(after), after);
    this.#latest = this.#build(report.time, report.proxies);
    const data = `event: snapshot\ndata: ${JSON.stringify(this.#latest)}\n\n`;
    for (const c of this.#clients) c.write(data);
  }

  #track(key: string, rps: number | null, success: number | null, p99: number | null) {
    let h = this.#history.get(key);
    if (h === undefined) {
      h = { rps: [], success: [], p99: [] };
      this.#history.set(key, h);
    }
    h.rps.push(rps);
    h.success.push(success);
    h.p99.push(p99);
    if (h.rps.length > this.#points) {
      h.rps.shift();
      h.success.shift();
      h.p99.shift();
    }
    return { rps: [...h.rps], success: [...h.success], p99: [...h.p99] };
  }

  #build(time: string, proxies: readonly ProxyStat[]): DashboardSnapshot {
    const rows = (p: ProxyStat, list: readonly TrafficStat[], kind: string) =>
      list.map((t) => {
        const key = `${kind}\u0000${p.proxy}\u0000${t.direction}\u0000${t.authority}\u0000${t.route ?? ""}`;
        return { ...t, key, history: this.#track(key, t.rps, t.successRate, t.p99) };
      });
    const graph = topology(proxies, this.#info);
    return {
      time,
      intervalMs: this.#intervalMs,
      proxies: proxies.map((p) => ({
        name: p.proxy,
        admin: p.admin,
        up: p.error === null,
        error: p.error?.message ?? null,
        identity: this.#info.get(p.proxy)?.identity ?? null,
        traffic: rows(p, p.traffic, "traffic"),
        routes: rows(p, p.routes, "route"),
        endpoints: p.endpoints,
      })),
      nodes: graph.nodes,
      edges: graph.edges.map((e) => {
        const key = `edge\u0000${e.from}\u0000${e.to}\u0000${e.service}`;
        return { ...e, key, history: this.#track(key, e.rps, e.successRate, null) };
      }),
    };
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://dashboard");
    if (req.method !== "GET") {
      res.writeHead(405).end("method not allowed\n");
      return;
    }
    const file = FILES[url.pathname];
    if (file !== undefined) {
      try {
        const body = await staticFile(file);
        res.writeHead(200, {
          "content-type": TYPES[file.split(".").pop() as string] ?? "application/octet-stream",
          "cache-control": "no-store",
        });
        res.end(body);
      } catch {
        res.writeHead(500).end(`dashboard file ${file} is missing from this build\n`);
      }
      return;
    }
    if (url.pathname === "/events") {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        connection: "keep-alive",
      });
      res.write(`retry: ${this.#intervalMs}\n\n`);
      if (this.#latest !== undefined)
        res.write(`event: snapshot\ndata: ${JSON.stringify(this.#latest)}\n\n`);
      this.#clients.add(res);
      res.once("close", () => this.#clients.delete(res));
      return;
    }
    if (url.pathname === "/tap") {
      this.#tap(url.searchParams, res);
      return;
    }
    if (url.pathname === "/snapshot.json") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(this.#latest ?? null));
      return;
    }
    res.writeHead(404).end("not found\n");
  }

  /** Relays the admins' `/tap` streams as server-sent events, one `tap` event per request. */
  #tap(params: URLSearchParams, res: http.ServerResponse): void {
    const admin = params.get("admin");
    params.delete("admin");
    let query: string;
    try {
      query = tapFilterQuery(parseTapFilter(params));
    } catch (err) {
      res
        .writeHead(400, { "content-type": "text/plain; charset=utf-8" })
        .end(`tap: ${(err as Error).message}\n`);
      return;
    }
    const targets = this.#targets.filter((t) => admin === null || admin === "" || t.name === admin);
    if (targets.length === 0) {
      res.writeHead(404).end(`tap: no admin named ${JSON.stringify(admin)}\n`);
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    res.write("retry: 2000\n\n");
    const upstream: http.ClientRequest[] = [];
    const send = (event: string, data: unknown) =>
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    for (const t of targets) {
      const hp = parseHostPort(t.address) as { host: string; port: number };
      const req = http.get(
        {
          host: hp.host,
          port: hp.port,
          path: `/tap${query}`,
          headers:
            this.#tapToken === undefined ? {} : { authorization: `Bearer ${this.#tapToken}` },
        },
        (up) => {
          if (up.statusCode !== 200) {
            let body = "";
            up.on("data", (d: Buffer) => (body += d.toString()));
            up.on("end", () =>
              send("tap-error", { proxy: t.name, error: `HTTP ${up.statusCode}: ${body.trim()}` }),
            );
            return;
          }
          const lines = createInterface({ input: up });
          lines.on("error", () => {});
          lines.on("line", (line) => {
            try {
              send("tap", { proxy: t.name, ...(JSON.parse(line) as object) });
            } catch {
              // not a JSON line: ignore
            }
          });
          lines.on("close", () => send("tap-error", { proxy: t.name, error: "tap stream ended" }));
        },
      );
      req.on("error", (err) => send("tap-error", { proxy: t.name, error: err.message }));
      upstream.push(req);
    }
    res.once("close", () => {
      for (const u of upstream) u.destroy();
    });
  }

  /** Stops scraping, ends every stream and closes the server. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#ticking;
    for (const c of this.#clients) c.end();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
