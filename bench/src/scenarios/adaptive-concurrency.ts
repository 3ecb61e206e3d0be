/**
 * Scenario `adaptive-concurrency`: an app whose latency rises with concurrency
 * (`peers/concurrency-app.mjs`: 20 requests in flight at 20 ms each, processor-shared
 * beyond, so its capacity is 1000 rps), offered 3× its capacity in an open loop, with and
 * without @mesh/limit's `GradientLimiter` (defaults) in front of its handler. Reported side
 * by side: goodput (2xx/s), p99 of admitted requests' time in the app (server side) against
 * the unloaded p99, the client's CO-corrected p99, 503s and requests still queued at the end.
 */
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { LOOPBACK } from "../lib/net.ts";
import {
  type Chart,
  check,
  fmt,
  fmtSpread,
  type ScenarioOutput,
  settlePeerStatuses,
  splitAvailable,
  spreadRows,
  statusNote,
  type Table,
} from "../lib/result.ts";
import { runFailureReason, runLoad, SRC_DIR } from "../lib/runners.ts";
import { round, spread } from "../lib/stats.ts";
import { meshUnavailableReason } from "../load/mesh-adapters.ts";
import type { OpenLoopResult } from "../load/open-loop.ts";

const CAPACITY = 20;
const BASE_MS = 20;
/** Requests per second the app serves at best: CAPACITY in flight, BASE_MS each. */
const CAPACITY_RPS = (CAPACITY * 1000) / BASE_MS;
const OVERLOAD = 3;
/** Client connections: enough that the client's pool does not bound the app's concurrency. */
const CONNECTIONS = 1024;

interface Variant {
  name: string;
  describe: string;
  limit: boolean;
  unavailable(): Promise<string | null>;
}

const VARIANTS: Variant[] = [
  {
    name: "unprotected",
    describe: "the app alone: every request is admitted",
    limit: false,
    unavailable: async () => null,
  },
  {
    name: "mesh-limit",
    describe:
      "@mesh/limit limitRequests() with a GradientLimiter at its defaults (Envoy's): 503 beyond the limit",
    limit: true,
    unavailable: () => meshUnavailableReason("limit"),
  },
];

/** What the app saw (GET /__stats). */
interface AppStats {
  completed: number;
  rejected: number;
  maxInFlight: number;
  p50Ms: number | null;
  p99Ms: number | null;
  limit: number | null;
  minRttMs: number | null;
}

interface RunResult {
  goodputRps: number;
  goodputShare: number;
  appP99Ms: number | null;
  clientP99Ms: number;
  rejected: number;
  queuedAtEnd: number;
  maxInFlight: number;
  limit: number | null;
}

/** The app's view of the requests that arrived since `sinceEpochMs`. */
async function appStats(origin: string, sinceEpochMs: number): Promise<AppStats> {
  const res = await fetch(`${origin}/__stats?since=${sinceEpochMs}`, {
    signal: AbortSignal.timeout(10_000),
  });
  return (await res.json()) as AppStats;
}

/** Runs the adaptive-concurrency scenario. */
export async function adaptiveConcurrency(ctx: BenchContext): Promise<ScenarioOutput> {
  const durationMs = ctx.quick ? 1_500 : 15_000;
  const warmupMs = ctx.quick ? 1_000 : 5_000;
  const drainMs = ctx.quick ? 2_000 : 10_000;
  const { peers, active } = await splitAvailable(VARIANTS);
  const failures = new Map<string, string>();
  const runs: Record<string, RunResult[]> = {};
  const unloaded: number[] = [];

  const startApp = async (limit: boolean) => {
    const proc = ctx.pm.start(
      "concurrency-app",
      process.execPath,
      [
        join(SRC_DIR, "peers", "concurrency-app.mjs"),
        "0",
        String(CAPACITY),
        String(BASE_MS),
        ...(limit ? ["--limit"] : []),
      ],
      { cpus: ctx.pinning.peer },
    );
    const line = await proc.waitForLine(/^READY /, 15_000);
    return { proc, origin: `http://${LOOPBACK}:${line.slice("READY ".length).trim()}` };
  };

  // One load worker per run: it warms up at the same rate first (the limiter measures minRTT
  // and finds its limit), then measures; the app's stats count arrivals from the measured start.
  const load = (origin: string, rate: number, ms: number) =>
    runLoad<OpenLoopResult>(ctx, {
      mode: "open",
      client: { kind: "pool", origin, connections: CONNECTIONS },
      path: "/",
      rate,
      durationMs: ms,
      warmupMs,
      drainTimeoutMs: drainMs,
    });

  for (let round_ = 0; round_ < ctx.rounds; round_++) {
    // Unloaded latency: the app alone at a tenth of its capacity.
    {
      const app = await startApp(false);
      try {
        const r = await load(app.origin, CAPACITY_RPS / 10, ctx.quick ? 500 : 3_000);
        const s = await appStats(app.origin, r.startedAtEpochMs);
        if (s.p99Ms !== null) unloaded.push(s.p99Ms);
      } finally {
        await ctx.pm.stop(app.proc);
      }
    }
    const order = active.map((_, i) => active[(i + round_) % active.length]!);
    for (const v of order) {
      if (failures.has(v.name)) continue;
      ctx.log(`adaptive-concurrency: round ${round_ + 1}/${ctx.rounds} ${v.name}`);
      const app = await startApp(v.limit);
      try {
        const r = await load(app.origin, OVERLOAD * CAPACITY_RPS, durationMs);
        const s = await appStats(app.origin, r.startedAtEpochMs);
        const goodputRps = round(r.ok / (r.elapsedMs / 1000), 1);
        runs[v.name] ??= [];
        runs[v.name]!.push({
          goodputRps,
          goodputShare: round(goodputRps / CAPACITY_RPS, 3),
          appP99Ms: s.p99Ms,
          clientP99Ms: r.latencyMs.p99,
          rejected: s.rejected,
          queuedAtEnd: r.timedOut,
          maxInFlight: s.maxInFlight,
          limit: s.limit,
        });
      } catch (error) {
        failures.set(v.name, runFailureReason(error));
      } finally {
        await ctx.pm.stop(app.proc);
      }
    }
  }
  settlePeerStatuses(peers, active, failures, VARIANTS);

  const unloadedP99 = spread(unloaded);
  const summary: Record<string, Record<string, ReturnType<typeof spread>>> = {};
  for (const [name, r] of Object.entries(runs)) {
    summary[name] = {
      goodputRps: spread(r.map((x) => x.goodputRps)),
      goodputShare: spread(r.map((x) => x.goodputShare)),
      appP99Ms: spread(r.map((x) => x.appP99Ms)),
      clientP99Ms: spread(r.map((x) => x.clientP99Ms)),
      rejected: spread(r.map((x) => x.rejected)),
      queuedAtEnd: spread(r.map((x) => x.queuedAtEnd)),
      maxInFlight: spread(r.map((x) => x.maxInFlight)),
      limit: spread(r.map((x) => x.limit)),
    };
  }
  const names = Object.keys(summary);
  const tables: Table[] = [
    {
      title: `App at ${OVERLOAD}× its capacity (${OVERLOAD * CAPACITY_RPS} rps offered, capacity ${CAPACITY_RPS} rps, unloaded p99 ${fmtSpread(unloadedP99, 1)} ms; median (min–max) of ${ctx.rounds} round(s))`,
      columns: [
        "app",
        "goodput rps",
        "goodput / capacity",
        "admitted p99 ms (in app)",
        "client p99 ms (CO-corrected, all)",
        "503s",
        "queued at end",
        "max in flight",
        "last limit",
      ],
      rows: spreadRows(summary, [
        ["goodputRps", 0],
        ["goodputShare", 3],
        ["appP99Ms", 1],
        ["clientP99Ms", 1],
        ["rejected", 0],
        ["queuedAtEnd", 0],
        ["maxInFlight", 0],
        ["limit", 0],
      ]),
    },
  ];
  const why = (name: string) => statusNote(peers, name);
  const base = unloadedP99?.median;
  const targets = [
    check(
      `@mesh/limit goodput at ${OVERLOAD}× capacity`,
      "≥ 90 % of capacity",
      summary["mesh-limit"]?.goodputShare?.median,
      (v) => v >= 0.9,
      (v) => `${fmt(v * 100, 1)} %`,
      why("mesh-limit"),
    ),
    check(
      `@mesh/limit p99 of admitted requests at ${OVERLOAD}× capacity`,
      "≤ 2× unloaded p99",
      base === undefined ? undefined : (summary["mesh-limit"]?.appP99Ms?.median ?? NaN) / base,
      (v) => v <= 2,
      (v) => `${fmt(v, 2)}× unloaded`,
      why("mesh-limit"),
    ),
    check(
      `unprotected app's client p99 at ${OVERLOAD}× capacity (the collapse)`,
      "≫ unloaded (reported, not a target of the limiter)",
      base === undefined ? undefined : (summary.unprotected?.clientP99Ms?.median ?? NaN) / base,
      (v) => v > 10,
      (v) => `${fmt(v, 0)}× unloaded`,
      why("unprotected"),
    ),
  ];
  const charts: Chart[] = [
    {
      kind: "bars",
      file: "adaptive-concurrency.svg",
      title: `App at ${OVERLOAD}× capacity: goodput share and p99 (ms)`,
      unit: "",
      groups: ["goodput / capacity × 100", "admitted p99 ms", "client p99 ms / 100"],
      series: names.map((n) => ({
        name: n,
        values: [
          (summary[n]!.goodputShare?.median ?? 0) * 100,
          summary[n]!.appP99Ms?.median ?? null,
          (summary[n]!.clientP99Ms?.median ?? 0) / 100,
        ],
      })),
    },
  ];
  return {
    notes: [
      `the app is processor-shared beyond ${CAPACITY} in flight (timers, no CPU): unprotected it still completes ${CAPACITY_RPS} rps, but every request waits behind the backlog, so latency grows without bound — in a real app, where clients time out and retry, that is where goodput collapses`,
      `open loop, ${CONNECTIONS} client connections, ${warmupMs / 1000} s warm-up at the same overload (the limiter measures minRTT and finds its limit), then ${durationMs / 1000} s measured; 'queued at end' were still waiting ${drainMs / 1000} s after the last send`,
    ],
    peers,
    targets,
    tables,
    charts,
    data: {
      capacity: CAPACITY,
      baseMs: BASE_MS,
      capacityRps: CAPACITY_RPS,
      offeredRps: OVERLOAD * CAPACITY_RPS,
      durationMs,
      unloadedP99Ms: unloadedP99,
      runs,
      summary,
    },
  };
}
