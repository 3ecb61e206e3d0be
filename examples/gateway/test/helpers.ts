import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** A gateway running as its own Node process, as a user starts it. */
export interface GatewayProcess {
  child: ChildProcess;
  port: number;
  origin: string;
  /** Every JSON line logged so far. */
  logs: Record<string, unknown>[];
  /** Resolves with the first logged line that has `msg`. */
  waitForLog(msg: string): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stderr(): string;
}

/** Spawns `node src/main.ts` with `env` (PORT=0) and waits for its "listening" line. */
export async function startGateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ["src/main.ts"], {
    cwd: root,
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  createInterface({ input: child.stdout! }).on("line", (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    logs.push(line);
    for (const w of waiters.filter((w) => w.msg === line.msg)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const waitForLog = (msg: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = logs.find((l) => l.msg === msg);
      if (seen) return resolve(seen);
      waiters.push({ msg, resolve });
      exited.then((code) =>
        reject(new Error(`gateway exited (${code}) before logging "${msg}": ${stderr}`)),
      );
    });
  const listening = await waitForLog("listening");
  const port = listening.port as number;
  return {
    child,
    port,
    origin: `http://127.0.0.1:${port}`,
    logs,
    waitForLog,
    exited,
    stderr: () => stderr,
  };
}

/** Stops a gateway process with SIGTERM and returns its exit code. */
export async function stopGateway(gw: GatewayProcess): Promise<number | null> {
  if (gw.child.exitCode === null) gw.child.kill("SIGTERM");
  return gw.exited;
}

/** A real upstream server on 127.0.0.1 for the gateway to forward to. */
export interface Upstream {
  server: Server;
  address: string;
  /** Requests received. */
  hits: number;
  /** Headers of the last request received. */
  lastHeaders: IncomingMessage["headers"] | undefined;
  close(): Promise<void>;
}

export async function startUpstream(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Upstream> {
  const server = createServer((req, res) => {
    up.hits++;
    up.lastHeaders = req.headers;
    handler(req, res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const up: Upstream = {
    server,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: 0,
    lastHeaders: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return up;
}

/** Result of `promtool check metrics`. */
export interface PromtoolResult {
  code: number | null;
  problems: string[];
}

/** Pipes `text` into the real `promtool check metrics` (CI installs Debian's `prometheus`). */
export function promtoolCheck(text: string): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code,
        problems: out
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l !== ""),
      }),
    );
    child.stdin.end(text);
  });
}

/** The one lint accepted on purpose: Linkerd's own `_ms` names, kept for dashboards. */
export const ACCEPTED_LINT =
  /^(response_latency_ms|tcp_connection_duration_ms) metric names should not contain abbreviated units$/;

/** The value of the sample `series` (name and labels exactly as rendered), if present. */
export function sample(text: string, series: string): number | undefined {
  let total: number | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    if (line.slice(0, space) === series) total = (total ?? 0) + Number(line.slice(space + 1));
  }
  return total;
}

/** A promise opened by hand, to order events between the test, an upstream and a client. */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** One GET with node:http, whose client sends headers as given (undici vets `connection`). */
export function nodeGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingMessage["headers"]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (s: string) => {
        body += s;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** stderr minus the type-stripping notice some Node 24 releases print. */
export function withoutNodeWarnings(stderr: string): string {
  return stderr
    .replace(/^.*ExperimentalWarning: Type Stripping.*\n/m, "")
    .replace(/^\(Use `node --trace-warnings.*\n/m, "");
}
