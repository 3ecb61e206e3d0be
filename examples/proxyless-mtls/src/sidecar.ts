/**
 * The books service's `mesh-proxy` sidecar as a child process: a generated YAML config
 * (identity from the issuer, inbound in front of the app, an authorization policy), its
 * `listening` log line, `/ready`, and a graceful stop.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";

/** What the sidecar needs to know. */
export interface SidecarOptions {
  trustDomain: string;
  /** The sidecar's (and so the service's) SPIFFE ID. */
  id: string;
  issuerUrl: string;
  /** The sidecar's bearer token at the issuer (written to a 0600 file). */
  token: string;
  /** The app behind the sidecar, `host:port`. */
  app: string;
  /** SPIFFE IDs (or patterns) allowed to call the app; everyone else gets 403. */
  allow: readonly string[];
}

/** A running sidecar. */
export interface Sidecar {
  readonly pid: number;
  /** The mTLS inbound listener, `127.0.0.1:<port>`. */
  readonly inbound: string;
  readonly admin: string;
  /** The YAML it runs with. */
  readonly config: string;
  /** SIGTERM, then resolves with the exit code once the process is gone. */
  stop(): Promise<number | string>;
}

/** Stops of the sidecars started and not yet exited, including those still starting. */
const running = new Set<() => Promise<number | string>>();
/**
 * Their processes and run directories: if this process dies anyway (a crash), each gets a
 * SIGTERM and its directory is removed as this one exits.
 */
const children = new Map<ChildProcess, string>();
process.once("exit", () => {
  for (const [child, dir] of children) {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Stops every sidecar this process started (for signal handlers); resolves once all exited. */
export async function stopAllSidecars(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()));
}

/** Path of the installed `mesh-proxy` CLI (`@mesh/proxy`'s dist/cli.js). */
export function proxyCli(): string {
  const pkg = createRequire(import.meta.url).resolve("@mesh/proxy/package.json");
  const cli = join(dirname(pkg), "dist", "cli.js");
  if (!existsSync(cli)) {
    throw new Error(
      `${cli} is missing: build first (npx turbo run build --filter=@mesh/example-proxyless-mtls...)`,
    );
  }
  return cli;
}

/** The sidecar's config. JSON strings are valid YAML scalars, so values are quoted with it. */
export function sidecarYaml(o: SidecarOptions, tokenFile: string): string {
  const q = JSON.stringify;
  return `proxyId: books
admin: { listen: "127.0.0.1:0" }
log: { level: info }
shutdown: { gracePeriod: 2s }
identity:
  trustDomain: ${q(o.trustDomain)}
  id: ${q(o.id)}
  issuer: { url: ${q(o.issuerUrl)}, tokenFile: ${q(tokenFile)} }
inbound:
  listen: "127.0.0.1:0"
  app: ${q(o.app)}
  appProtocol: http1 # the app is node:http; h2 callers are translated
  policy:
    default: deny
    rules:
      - allow:
          identities: [${o.allow.map((id) => q(id)).join(", ")}]
`;
}

/** Starts `mesh-proxy` and resolves once it is listening and `/ready` answers 200. */
export async function startSidecar(o: SidecarOptions, timeoutMs = 20_000): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), "mesh-proxyless-"));
  const tokenFile = join(dir, "books.token");
  writeFileSync(tokenFile, `${o.token}\n`, { mode: 0o600 });
  const config = sidecarYaml(o, tokenFile);
  const configFile = join(dir, "proxy.yaml");
  writeFileSync(configFile, config);

  const child = spawn(process.execPath, [proxyCli(), "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      resolve(code ?? signal ?? "unknown");
    }),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    return exited;
  };
  running.add(stop);
  children.set(child, dir);
  void exited.then(() => {
    running.delete(stop);
    children.delete(child);
  });
  try {
    const addresses = await listening(child, exited, () => stderr);
    await ready(addresses.admin, exited, timeoutMs);
    return {
      pid: child.pid ?? -1,
      inbound: addresses.inbound,
      admin: addresses.admin,
      config,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Resolves with the addresses of the proxy's `listening` log line (JSON on stdout). */
function listening(
  child: ChildProcess,
  exited: Promise<number | string>,
  stderr: () => string,
): Promise<{ admin: string; inbound: string }> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (text) => {
      let line: { msg?: unknown; admin?: unknown; inbound?: unknown };
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      if (line.msg === "listening") {
        resolve({ admin: String(line.admin), inbound: String(line.inbound) });
      }
    });
    void exited.then((code) =>
      reject(new Error(`mesh-proxy exited (${code}) before listening: ${stderr().trim()}`)),
    );
  });
}

/** Polls `/ready` (20 ms doubling to 250 ms) until 200: the sidecar holds its SVID. */
async function ready(
  admin: string,
  exited: Promise<number | string>,
  timeoutMs: number,
): Promise<void> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = performance.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(250, delay * 2)) {
    if ((await status(`http://${admin}/ready`)) === 200) return;
    if (gone) throw new Error("mesh-proxy exited before it was ready");
    if (performance.now() > deadline) {
      throw new Error(`mesh-proxy: /ready did not answer 200 within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** One `response_total` series of the sidecar's inbound side. */
export interface InboundResponses {
  /** The verified client SPIFFE ID, or null for plaintext requests. */
  clientId: string | null;
  tls: boolean;
  status: number;
  count: number;
}

/** Reads the sidecar's `/metrics` and returns its inbound `response_total` series. */
export async function inboundResponses(admin: string): Promise<InboundResponses[]> {
  const text = await get(`http://${admin}/metrics`);
  const out: InboundResponses[] = [];
  for (const line of text.split("\n")) {
    const m = /^response_total\{(.*)\} (\d+)$/.exec(line);
    if (m === null) continue;
    const labels = Object.fromEntries(
      [...(m[1] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (labels.direction !== "inbound") continue;
    out.push({
      clientId: labels.client_id ?? null,
      tls: labels.tls === "true",
      status: Number(labels.status_code),
      count: Number(m[2]),
    });
  }
  return out;
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (s: string) => {
          body += s;
        });
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

/** GET a URL with node:http; the status, or 0 if it could not connect. */
function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}
