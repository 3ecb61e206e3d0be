import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

/** A temporary directory for config files. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "mesh-proxy-test-"));
}

/** Writes a config object as YAML and returns its path. */
export function writeConfig(dir: string, config: unknown, name = "proxy.yaml"): string {
  const file = join(dir, name);
  writeFileSync(file, typeof config === "string" ? config : stringify(config));
  return file;
}

/** A running proxy process with its log lines. */
export interface ProxyProcess {
  child: ChildProcess;
  addresses: { admin: string; inbound?: string; outbound?: string; tcp?: Record<string, string> };
  logs: Record<string, unknown>[];
  /** Resolves with the first log line matching. */
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Spawns `node dist/cli.js --config <file>` and waits for its "listening" log line. */
export async function startProxy(
  configFile: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [CLI, "--config", configFile], {
    // No warm-up unless a test asks (pass MESH_PROXY_WARMUP__REQUESTS: undefined to let the
    // config decide): it holds /ready for seconds of CPU per proxy, which tests of other
    // things do not need (warmup.test.ts covers it).
    env: { MESH_PROXY_WARMUP__REQUESTS: "0", ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: {
    p: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      parsed = { msg: line };
    }
    logs.push(parsed);
    for (const w of [...waiters]) {
      if (w.p(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  });
  const waitForLog = (p: (l: Record<string, unknown>) => boolean) => {
    const found = logs.find(p);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      waiters.push({ p, resolve });
      exited.then((code) =>
        reject(new Error(`proxy exited (${code}) before the expected log line; stderr: ${stderr}`)),
      );
    });
  };
  const listening = await waitForLog((l) => l.msg === "listening");
  return {
    child,
    addresses: listening as unknown as ProxyProcess["addresses"],
    logs,
    waitForLog,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A server listening on 127.0.0.1:0, with its address and a close that drops connections. */
export interface Listening<S> {
  server: S;
  address: string;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0; `close()` runs `dropConnections` first so it never waits on clients. */
async function listening<S extends net.Server>(
  server: S,
  dropConnections: () => void,
): Promise<Listening<S>> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        dropConnections();
        server.close(() => r());
      }),
  };
}

/** An HTTP/1.1 app server on 127.0.0.1:0. */
export function h1App(handler: http.RequestListener): Promise<Listening<http.Server>> {
  const server = http.createServer(handler);
  return listening(server, () => server.closeAllConnections());
}

/** An h2c app server on 127.0.0.1:0. */
export function h2App(
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
): Promise<Listening<http2.Http2Server>> {
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  return listening(server, () => {
    for (const s of sessions) s.destroy();
  });
}

/**
 * Writes `config` to a fresh temp file (admin on 127.0.0.1:0 unless `config.admin` says
 * otherwise) and starts a proxy with it.
 */
export function launch(
  config: Record<string, unknown>,
  env: NodeJS.ProcessEnv = {},
): Promise<ProxyProcess> {
  return startProxy(writeConfig(tempDir(), { admin: { listen: "127.0.0.1:0" }, ...config }), env);
}

/**
 * An inbound proxy in front of `app` and an outbound proxy with one service (`service`,
 * e.g. `{ name: "books" }`) whose only endpoint is that inbound: client → outbound →
 * inbound → app.
 */
export async function proxyPair(
  app: string,
  service: { name: string } & Record<string, unknown>,
): Promise<{ inbound: ProxyProcess; outbound: ProxyProcess; stop(): Promise<unknown> }> {
  const inbound = await launch({ inbound: { listen: "127.0.0.1:0", app } });
  const outbound = await launch({
    outbound: {
      listen: "127.0.0.1:0",
      services: [{ discovery: { static: [inbound.addresses.inbound] }, ...service }],
    },
  }).catch(async (err: unknown) => {
    await inbound.stop();
    throw err;
  });
  return {
    inbound,
    outbound,
    stop: () => Promise.all([inbound.stop(), outbound.stop()]),
  };
}

/** Polls until `check` returns true (event-free readiness for things like reloads). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}
