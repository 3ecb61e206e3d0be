import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Child, httpStatus, waitReady } from "./children.ts";
import {
  type BooksEndpoint,
  booksSidecarConfig,
  type ProxyFeatures,
  proxyFeatures,
  webSidecarConfig,
  writeConfig,
} from "./configs.ts";
import { type DemoIssuer, startIssuer } from "./identity.ts";
import { TrafficGenerator } from "./traffic.ts";

/** The books replicas: one fast, one 20x slower, one as fast but failing 10 % with 503. */
export const REPLICAS = [
  { name: "books-fast", role: "fast", delayMs: 10, failRate: 0 },
  { name: "books-slow", role: "slow", delayMs: 200, failRate: 0 },
  { name: "books-flaky", role: "flaky", delayMs: 10, failRate: 0.1 },
] as const;

/** Options of {@link Demo}. */
export interface DemoOptions {
  /** Requests per second into web. Default 50. */
  rps?: number;
  /** mTLS between sidecars: `auto` (default) turns it on when the proxy supports `identity:`. */
  mtls?: "on" | "off" | "auto";
  /** Keep the run directory (configs, tokens, logs) after stopping. Default false. */
  keep?: boolean;
  /** Progress messages. Default: stderr. */
  log?: (text: string) => void;
}

/** A sidecar's bound addresses, from its "listening" log line. */
export interface SidecarAddresses {
  admin: string;
  inbound?: string;
  outbound?: string;
}

const APPS = fileURLToPath(new URL("./apps/", import.meta.url));

/** Path of the `mesh-proxy` CLI: `MESH_DEMO_PROXY_CLI`, else the installed @mesh/proxy's. */
export function proxyCli(): string {
  const override = process.env.MESH_DEMO_PROXY_CLI;
  if (override) return override;
  const pkg = createRequire(import.meta.url).resolve("@mesh/proxy/package.json");
  const cli = join(dirname(pkg), "dist", "cli.js");
  if (!existsSync(cli)) {
    throw new Error(`${cli} is missing: build first (npx turbo run build --filter=@mesh/proxy...)`);
  }
  return cli;
}

/** Asks the OS for a free loopback port (for the one app whose sidecar must know it first). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/**
 * The local demo mesh: an identity issuer, `web` and three `books` replicas, each app
 * behind its own `mesh-proxy` sidecar (real child processes on loopback), a steady load
 * into web, `mesh-proxy stat` and `mesh-proxy dashboard` over every sidecar.
 */
export class Demo {
  readonly dir = mkdtempSync(join(tmpdir(), "mesh-demo-"));
  readonly children: Child[] = [];
  /** Sidecar name → admin address, in display order. */
  readonly admins = new Map<string, string>();
  /** Sidecar name → its bound addresses (admin, inbound, outbound). */
  readonly sidecars = new Map<string, SidecarAddresses>();
  /** books replica address as web's sidecar dials it → replica role. */
  readonly booksRoles = new Map<string, string>();
  mtls = false;
  traffic: TrafficGenerator | undefined;
  readonly #options: Required<DemoOptions>;
  readonly #cli = proxyCli();
  #issuer: DemoIssuer | undefined;
  #statWatch: ChildProcess | undefined;
  #dashboard: ChildProcess | undefined;
  /** The dashboard's URL once {@link Demo.startDashboard} resolved. */
  dashboardUrl: string | undefined;
  #stopping: Promise<void> | undefined;
  readonly #ports = new Set<number>();

  constructor(options: DemoOptions = {}) {
    this.#options = {
      rps: options.rps ?? 50,
      mtls: options.mtls ?? "auto",
      keep: options.keep ?? false,
      log: options.log ?? ((t) => process.stderr.write(t)),
    };
  }

  /** Every port a demo process listened on. */
  get ports(): number[] {
    return [...this.#ports];
  }

  /** `name=admin,...` for `mesh-proxy stat --admin`. */
  get statTargets(): string {
    return [...this.admins].map(([n, a]) => `${n}=${a}`).join(",");
  }

  #spawn(name: string, args: string[]): Child {
    const child = new Child(name, process.execPath, args, this.dir, process.env);
    this.children.push(child);
    return child;
  }

  async #app(name: string, script: string, args: string[]): Promise<string> {
    const child = this.#spawn(name, [join(APPS, script), ...args]);
    const line = await child.waitFor((l) => l.msg === "listening", "listening");
    const address = String(line.address);
    this.#ports.add(portOf(address));
    return address;
  }

  async #sidecar(name: string, config: Record<string, unknown>): Promise<SidecarAddresses> {
    const file = writeConfig(this.dir, name, config);
    const child = this.#spawn(`${name}-proxy`, [this.#cli, "--config", file]);
    const line = await child.waitFor((l) => l.msg === "listening", "listening");
    const addresses = line as unknown as SidecarAddresses;
    await waitReady(child, addresses.admin);
    for (const a of [addresses.admin, addresses.inbound, addresses.outbound]) {
      if (a !== undefined) this.#ports.add(portOf(a));
    }
    this.admins.set(name, addresses.admin);
    this.sidecars.set(name, addresses);
    return addresses;
  }

  /** Starts the issuer, the apps and their sidecars (each awaited ready), then the load. */
  async start(): Promise<void> {
    const log = this.#options.log;
    const features: ProxyFeatures = await proxyFeatures(this.#cli);
    if (this.#options.mtls === "on" && !features.identity) {
      throw new Error("mtls=on, but this @mesh/proxy has no identity: support yet");
    }
    this.mtls = this.#options.mtls === "on" || (this.#options.mtls === "auto" && features.identity);
    if (this.mtls) {
      this.#issuer = await startIssuer(this.dir, ["web", ...REPLICAS.map((r) => r.name)]);
      this.#ports.add(Number(new URL(this.#issuer.url).port));
      log(`issuer   ${this.#issuer.url} (trust domain demo.mesh)\n`);
    }
    const books: BooksEndpoint[] = await Promise.all(
      REPLICAS.map(async (r) => {
        const app = await this.#app(r.name, "books.ts", [
          "--name",
          r.name,
          "--delay-ms",
          String(r.delayMs),
          "--fail-rate",
          String(r.failRate),
        ]);
        const sidecar = await this.#sidecar(
          r.name,
          booksSidecarConfig(r.name, app, this.#issuer, features),
        );
        const address = sidecar.inbound as string;
        this.booksRoles.set(address, r.role);
        log(
          `${r.name.padEnd(11)} app ${app}  sidecar inbound ${address}  admin ${sidecar.admin}\n`,
        );
        return { address, identity: this.#issuer?.identities.get(r.name)?.id };
      }),
    );
    const webPort = await freePort();
    const webApp = `127.0.0.1:${webPort}`;
    const web = await this.#sidecar("web", webSidecarConfig(webApp, books, this.#issuer, features));
    // Display order: web, then the replicas as listed (they started concurrently).
    const started = new Map(this.admins);
    this.admins.clear();
    for (const name of ["web", ...REPLICAS.map((r) => r.name)]) {
      this.admins.set(name, started.get(name) as string);
    }
    await this.#app("web", "web.ts", [
      "--port",
      String(webPort),
      "--books-via",
      web.outbound as string,
    ]);
    log(
      `web         app ${webApp}  sidecar inbound ${web.inbound}  outbound ${web.outbound}  admin ${web.admin}\n`,
    );
    log(`mTLS between sidecars: ${this.mtls ? "on" : "off (plaintext)"}; logs in ${this.dir}\n`);
    this.traffic = new TrafficGenerator(web.inbound as string, this.#options.rps);
    this.traffic.start();
  }

  /**
   * Runs `mesh-proxy stat --watch` over every sidecar, writing to this process's stdout
   * (with the dashboard's URL above each table once it runs).
   */
  watchStat(intervalMs = 2_000): void {
    const title =
      this.dashboardUrl === undefined ? [] : ["--title", `dashboard: ${this.dashboardUrl}`];
    this.#statWatch = spawn(
      process.execPath,
      [
        this.#cli,
        "stat",
        "--watch",
        "--interval",
        `${intervalMs}ms`,
        "--admin",
        this.statTargets,
        ...title,
      ],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
  }

  /**
   * Starts `mesh-proxy dashboard` over every sidecar on `listen` (default 127.0.0.1:50750,
   * or a port the OS picks when that one is taken) and resolves to its URL.
   */
  async startDashboard(listen = "127.0.0.1:50750", intervalMs = 2_000): Promise<string> {
    for (const address of [listen, "127.0.0.1:0"]) {
      const child = spawn(
        process.execPath,
        [
          this.#cli,
          "dashboard",
          "--listen",
          address,
          "--interval",
          `${intervalMs}ms`,
          "--admin",
          this.statTargets,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      let err = "";
      const url = await new Promise<string | undefined>((resolve) => {
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          const m = /mesh-proxy dashboard: (http:\/\/\S+)/.exec(out);
          if (m !== null) resolve(m[1]);
        });
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        child.once("exit", () => resolve(undefined));
      });
      if (url !== undefined) {
        this.#dashboard = child;
        this.#ports.add(portOf(new URL(url).host));
        this.dashboardUrl = url;
        return url;
      }
      if (!/cannot serve/.test(err)) throw new Error(`mesh-proxy dashboard failed: ${err.trim()}`);
    }
    throw new Error("mesh-proxy dashboard could not listen");
  }

  /** Runs `mesh-proxy stat` once over a 1 s window (`--json` when asked) and returns its stdout. */
  stat(json: boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      const args = [this.#cli, "stat", "--window", "1s", "--admin", this.statTargets];
      const child = spawn(process.execPath, json ? [...args, "--json"] : args, {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0 ? resolve(out) : reject(new Error(`mesh-proxy stat exited ${code}`)),
      );
    });
  }

  /**
   * Stops everything: the load (waiting for requests in flight), the stat watcher, then
   * every sidecar (`POST /shutdown`, a graceful drain) and app (SIGTERM) at once; waits for
   * each to exit (SIGKILL after 10 s), closes the issuer and removes the run directory.
   * Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    await this.traffic?.stop();
    for (const watch of [this.#statWatch, this.#dashboard]) {
      if (watch !== undefined && watch.exitCode === null && watch.signalCode === null) {
        const exited = new Promise((r) => watch.once("exit", r));
        watch.kill("SIGTERM");
        await exited;
      }
    }
    const admins = new Map([...this.admins].map(([n, a]) => [`${n}-proxy`, a]));
    await Promise.all(
      this.children.map(async (c) => {
        const admin = admins.get(c.name);
        if (admin !== undefined && (await httpStatus(admin, "/shutdown", "POST")) === 202) return;
        c.signal("SIGTERM");
      }),
    );
    const all = Promise.all(this.children.map((c) => c.exited));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => {
      timer = setTimeout(() => r("late"), 10_000);
    });
    if ((await Promise.race([all, late])) === "late") {
      for (const c of this.children) c.signal("SIGKILL");
    }
    clearTimeout(timer);
    await all;
    await Promise.all(this.children.map((c) => c.closeLog()));
    await this.#issuer?.close();
    if (!this.#options.keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
