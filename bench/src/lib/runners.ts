/**
 * Starting the pieces every scenario uses: the backend process, a load-generator worker,
 * and `wrk` (or its undici fallback) for closed-loop maximum throughput.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ClosedLoopResult } from "../load/closed-loop-undici.ts";
import type { OpenLoopResult } from "../load/open-loop.ts";
import type { LoadJob } from "../load/worker.ts";
import type { BackendSpec, BackendStats, EndpointSpec } from "../peers/backend.ts";
import type { BenchContext } from "./context.ts";
import { LOOPBACK } from "./net.ts";
import type { ManagedProcess } from "./proc.ts";
import { ensureTool } from "./tools.ts";

/** bench/src */
export const SRC_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

/** A running backend process and its control API. */
export interface Backend {
  proc: ManagedProcess;
  endpoints: Array<{ name: string; port: number; origin: string }>;
  stats(): Promise<BackendStats>;
  configure(body: {
    reset?: boolean;
    endpoints?: Record<string, Partial<EndpointSpec>>;
  }): Promise<void>;
}

/** Starts `peers/backend.ts` pinned to the peer CPU and waits for its READY line. */
export async function startBackend(ctx: BenchContext, spec: BackendSpec): Promise<Backend> {
  const proc = ctx.pm.start(
    "backend",
    process.execPath,
    [join(SRC_DIR, "peers", "backend.ts"), JSON.stringify(spec)],
    { cpus: ctx.pinning.peer },
  );
  const line = await proc.waitForLine(/^READY /, 15_000);
  const ready = JSON.parse(line.slice("READY ".length)) as {
    control: number;
    endpoints: Array<{ name: string; port: number }>;
  };
  const control = `http://${LOOPBACK}:${ready.control}`;
  return {
    proc,
    endpoints: ready.endpoints.map((e) => ({ ...e, origin: `http://${LOOPBACK}:${e.port}` })),
    async stats() {
      const res = await fetch(`${control}/stats`, { signal: AbortSignal.timeout(10_000) });
      return (await res.json()) as BackendStats;
    },
    async configure(body) {
      const res = await fetch(`${control}/configure`, {
        method: "POST",
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status !== 204) throw new Error(`backend configure: HTTP ${res.status}`);
    },
  };
}

/** Thrown when a load worker reports an error (e.g. a @mesh package is unavailable). */
export class LoadWorkerError extends Error {
  readonly code = "MESH_BENCH_LOAD_WORKER";
  /** Set when the worker reported a package as unavailable. */
  readonly reason: string | undefined;
  constructor(message: string, reason?: string) {
    super(message);
    this.name = "LoadWorkerError";
    this.reason = reason;
  }
}

/** Why a run failed, as written into the results: the worker's reason, else the message. */
export function runFailureReason(error: unknown): string {
  return error instanceof LoadWorkerError && error.reason ? error.reason : (error as Error).message;
}

/** Requests per second and how long {@link warmUp} loads a peer before it is measured. */
export const WARMUP = { rate: 1000, durationMs: 20_000 } as const;

/** How long {@link warmUp} runs in this context (short in `--quick` smoke runs). */
export function warmUpMs(ctx: BenchContext): number {
  return ctx.quick ? 200 : WARMUP.durationMs;
}

/**
 * Brings a freshly started peer to its steady state before it is measured, the state a
 * sidecar that runs for days is in: 20 000 requests at 1000 rps, enough for V8 to have
 * optimized every Node peer's per-request code (mesh-proxy's launcher has TurboFan take a
 * function after 1000 calls; cold, the pair cost ~1.4× the CPU per request over its first
 * ~15 k requests). Moderate on purpose: a closed-loop burst would also grow
 * the young generation of peers whose heap is not fixed, tilting their RSS at 1000 rps.
 * Resolves with what the fresh peer did over those requests (the `cold-start` measure).
 */
export async function warmUp(
  ctx: BenchContext,
  client: LoadJob["client"],
  path = "/",
): Promise<OpenLoopResult> {
  return await runLoad(ctx, {
    mode: "open",
    client,
    path,
    rate: WARMUP.rate,
    durationMs: warmUpMs(ctx),
    // A fresh peer's first requests can be slow: wait for them (they are the cold-start
    // measure) rather than count them as failed.
    drainTimeoutMs: 10_000,
  });
}

/** Runs one load job in a worker process pinned to the load CPU; resolves with its result. */
export async function runLoad<T = OpenLoopResult>(
  ctx: BenchContext,
  job: LoadJob,
  extraNodeArgs: string[] = [],
): Promise<T & { describe: string }> {
  const proc = ctx.pm.start(
    "loadgen",
    process.execPath,
    [...extraNodeArgs, join(SRC_DIR, "load", "worker.ts"), JSON.stringify(job)],
    { cpus: ctx.pinning.load },
  );
  const budget =
    job.durationMs +
    (job.warmupMs ?? 0) +
    (job.drainTimeoutMs ?? 5000) +
    30_000 +
    Math.max(0, (job.startAtEpochMs ?? 0) - Date.now());
  const timer = setTimeout(() => void ctx.pm.stop(proc), budget);
  try {
    await proc.exited;
  } finally {
    clearTimeout(timer);
  }
  const out = proc.stdout();
  const result = /^RESULT (.*)$/m.exec(out);
  if (result) return JSON.parse(result[1]!) as T & { describe: string };
  const error = /^ERROR (.*)$/m.exec(out);
  if (error) {
    const e = JSON.parse(error[1]!) as { message: string; reason?: string };
    throw new LoadWorkerError(e.message, e.reason);
  }
  throw new LoadWorkerError(`load worker produced no result; stderr: ${proc.stderr().slice(-800)}`);
}

/** Closed-loop maximum throughput from `wrk` or the undici fallback. */
export interface MaxThroughput {
  tool: "wrk" | "undici-closed-loop";
  /** Why wrk was not used, when it was not. */
  fallbackReason?: string;
  requests: number;
  errors: number;
  non2xx: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number };
}

/** Measures max throughput against `url` with `connections` connections for `durationMs`. */
export async function runMaxThroughput(
  ctx: BenchContext,
  url: string,
  durationMs: number,
  connections = 32,
): Promise<MaxThroughput> {
  const wrk = ensureTool("wrk", ctx.install);
  ctx.tools.set("wrk", wrk);
  if (wrk.available && wrk.path) {
    const seconds = Math.max(1, Math.round(durationMs / 1000));
    const proc = ctx.pm.start(
      "wrk",
      wrk.path,
      ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "--timeout", "5s", url],
      { cpus: ctx.pinning.load },
    );
    const timer = setTimeout(() => void ctx.pm.stop(proc), durationMs + 30_000);
    await proc.exited;
    clearTimeout(timer);
    return parseWrk(proc.stdout());
  }
  const url_ = new URL(url);
  const result = await runLoad<ClosedLoopResult>(ctx, {
    mode: "closed",
    client: { kind: "pool", origin: url_.origin, connections },
    path: url_.pathname,
    durationMs,
    concurrency: connections,
  });
  return {
    tool: "undici-closed-loop",
    fallbackReason: `wrk unavailable: ${wrk.reason}`,
    requests: result.requests,
    errors: result.errors,
    non2xx: result.non2xx,
    rps: result.rps,
    latencyMs: { p50: result.latencyMs.p50, p90: result.latencyMs.p90, p99: result.latencyMs.p99 },
  };
}

/** Parses wrk's `--latency` output. */
export function parseWrk(out: string): MaxThroughput {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const ms = (pct: string) => {
    const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    if (!m) return 0;
    const v = Number(m[1]);
    return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    out,
  );
  const errors = socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    tool: "wrk",
    requests: num(/(\d+) requests in/),
    errors,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    rps: Math.round(num(/Requests\/sec:\s+([\d.]+)/)),
    latencyMs: { p50: ms("50"), p90: ms("90"), p99: ms("99") },
  };
}
