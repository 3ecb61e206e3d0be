/**
 * Scenario `hedging`: tail latency when replicas stall. Five HTTP/1.1 endpoints answer at
 * once, except for stalls of 500 ms, in two cases: one replica stalls 1 % of its requests
 * (the case), and every replica stalls 0.2 % (the same share of all requests, but
 * no replica is worse than another). The client offers a fixed rate through @mesh/balancer
 * (P2C over Peak-EWMA) with and without @mesh/retry's hedge() on top (delay 10 ms,
 * maxAttempts 2, default RetryBudget). Reported: p50, p99 and p99.9 of CO-corrected latency,
 * and extra load = requests the endpoints saw / offered.
 */
import type { BenchContext } from "../lib/context.ts";
import {
  check,
  fmt,
  fmtSpread,
  type PeerStatus,
  type ScenarioOutput,
  settlePeerStatuses,
  statusNote,
  type Table,
} from "../lib/result.ts";
import { runFailureReason, runLoad, startBackend } from "../lib/runners.ts";
import { round, spread } from "../lib/stats.ts";
import type { ClientSpec } from "../load/clients.ts";
import { meshUnavailableReason } from "../load/mesh-adapters.ts";
import type { OpenLoopResult } from "../load/open-loop.ts";

const RATE = 500;
const STALL_RATIO = 0.01;
const STALL_MS = 500;
const HEDGE_DELAY_MS = 10;
const ENDPOINTS = 5;

/** Where the stalls are. Peak-EWMA can steer away from one slow replica, not from all. */
const CASES = [
  {
    name: "one replica",
    describe: `one of ${ENDPOINTS} endpoints holds ${STALL_RATIO * 100} % of its requests for ${STALL_MS} ms`,
    stalls: { e0: { stallRatio: STALL_RATIO, stallMs: STALL_MS } },
  },
  {
    name: "every replica",
    describe: `each of ${ENDPOINTS} endpoints holds ${(STALL_RATIO * 100) / ENDPOINTS} % of its requests for ${STALL_MS} ms`,
    stalls: Object.fromEntries(
      Array.from({ length: ENDPOINTS }, (_, i) => [
        `e${i}`,
        { stallRatio: STALL_RATIO / ENDPOINTS, stallMs: STALL_MS },
      ]),
    ),
  },
] as const;
type Case = (typeof CASES)[number];

interface Variant {
  name: string;
  describe: string;
  client(origins: string[]): ClientSpec;
}

const VARIANTS: Variant[] = [
  {
    name: "p2c",
    describe: "@mesh/balancer P2C over Peak-EWMA, no hedging",
    client: (origins) => ({ kind: "mesh-hedge", origins, connections: 16, delayMs: undefined }),
  },
  {
    name: "p2c+hedge",
    describe: `@mesh/balancer P2C + @mesh/retry hedge({ delay: ${HEDGE_DELAY_MS} }) on the default RetryBudget`,
    client: (origins) => ({
      kind: "mesh-hedge",
      origins,
      connections: 16,
      delayMs: HEDGE_DELAY_MS,
    }),
  },
];

interface RunResult {
  offered: number;
  ok: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  endpointRequests: number;
  extraLoad: number;
}

/** Runs the hedging scenario. */
export async function hedging(ctx: BenchContext): Promise<ScenarioOutput> {
  const durationMs = ctx.quick ? 2_000 : 20_000;
  const peers: PeerStatus[] = [];
  const active: Variant[] = [];
  const reason =
    (await meshUnavailableReason("retry")) ?? (await meshUnavailableReason("balancer"));
  for (const v of VARIANTS) {
    if (reason) peers.push({ name: v.name, describe: v.describe, status: "unavailable", reason });
    else active.push(v);
  }
  const backend = await startBackend(ctx, {
    endpoints: Array.from({ length: ENDPOINTS }, (_, i) => ({ name: `e${i}` })),
  });
  const origins = backend.endpoints.map((e) => e.origin);
  const runs: Record<string, RunResult[]> = {};
  const failures = new Map<string, string>();
  const runOnce = async (c: Case, variant: Variant): Promise<RunResult> => {
    await backend.configure({ reset: true, endpoints: c.stalls });
    const r = await runLoad<OpenLoopResult>(ctx, {
      mode: "open",
      client: variant.client(origins),
      path: "/",
      rate: RATE,
      durationMs,
      drainTimeoutMs: 10_000,
      startAtEpochMs: Date.now() + (ctx.quick ? 800 : 1500),
    });
    const stats = await backend.stats();
    const endpointRequests = stats.endpoints.reduce((n, e) => n + e.requests, 0);
    return {
      offered: r.offered,
      ok: r.ok,
      p50Ms: r.latencyMs.p50,
      p99Ms: r.latencyMs.p99,
      p999Ms: r.latencyMs.p999,
      endpointRequests,
      extraLoad: round(endpointRequests / r.offered - 1, 4),
    };
  };
  try {
    for (let round_ = 0; round_ < ctx.rounds; round_++) {
      const order = active.map((_, i) => active[(i + round_) % active.length]!);
      for (const c of CASES) {
        for (const variant of order) {
          if (failures.has(variant.name)) continue;
          ctx.log(`hedging: round ${round_ + 1}/${ctx.rounds} ${c.name}: ${variant.name}`);
          try {
            const result = await runOnce(c, variant);
            const key = `${c.name}/${variant.name}`;
            runs[key] = [...(runs[key] ?? []), result];
          } catch (error) {
            failures.set(variant.name, runFailureReason(error));
          }
        }
      }
    }
  } finally {
    await ctx.pm.stop(backend.proc);
  }
  settlePeerStatuses(peers, active, failures, VARIANTS);

  const summary: Record<string, Record<string, ReturnType<typeof spread>>> = {};
  for (const [name, r] of Object.entries(runs)) {
    summary[name] = {
      p50Ms: spread(r.map((x) => x.p50Ms)),
      p99Ms: spread(r.map((x) => x.p99Ms)),
      p999Ms: spread(r.map((x) => x.p999Ms)),
      extraLoad: spread(r.map((x) => x.extraLoad)),
    };
  }
  const tables: Table[] = CASES.map((c) => ({
    title: `${c.describe}; ${RATE} rps for ${durationMs / 1000} s (median (min–max) of ${ctx.rounds} round(s))`,
    columns: ["client", "p50 ms", "p99 ms", "p99.9 ms", "extra load %"],
    rows: active
      .filter((v) => summary[`${c.name}/${v.name}`] !== undefined)
      .map((v) => {
        const s = summary[`${c.name}/${v.name}`]!;
        const extra = s.extraLoad;
        return [
          v.name,
          fmtSpread(s.p50Ms, 2),
          fmtSpread(s.p99Ms, 2),
          fmtSpread(s.p999Ms, 2),
          extra
            ? fmtSpread(
                {
                  ...extra,
                  median: extra.median * 100,
                  min: extra.min * 100,
                  max: extra.max * 100,
                },
                2,
              )
            : "–",
        ];
      }),
  }));
  const why = (name: string) => statusNote(peers, name);
  const base = summary["every replica/p2c"]?.p999Ms?.median;
  const extraLoads = CASES.map((c) => summary[`${c.name}/p2c+hedge`]?.extraLoad?.median).filter(
    (v): v is number => v !== undefined,
  );
  const targets = [
    check(
      "p99.9 with hedging vs without, stalls on every replica",
      "≤ 0.25× (a stall costs the hedge delay, not 500 ms)",
      base === undefined ? undefined : summary["every replica/p2c+hedge"]?.p999Ms?.median,
      (v) => base !== undefined && v <= base * 0.25,
      (v) => `${fmt(v, 2)} ms vs ${fmt(base ?? Number.NaN, 2)} ms`,
      why("p2c+hedge"),
    ),
    check(
      "extra load from hedging (the larger of the two cases)",
      "≤ 20 % (the retry budget's ratio)",
      extraLoads.length === 0 ? undefined : Math.max(...extraLoads),
      (v) => v <= 0.2,
      (v) => `${fmt(v * 100, 2)} %`,
      why("p2c+hedge"),
    ),
  ];
  return {
    notes: [
      `open-loop ${RATE} rps, CO-corrected; extra load counts every request the ${ENDPOINTS} endpoints received (hedges included) over the requests offered`,
      "one replica: Peak-EWMA sees e0's 500 ms answers and sends it less traffic for a while, so few requests meet a stall even without hedging",
      "every replica: no replica is slower than another, so P2C cannot steer around the stalls; only a hedge can answer a stalled request early",
    ],
    peers,
    targets,
    tables,
    charts: [],
    data: {
      rate: RATE,
      durationMs,
      cases: CASES.map((c) => ({ name: c.name, stalls: c.stalls })),
      stallMs: STALL_MS,
      runs,
      summary,
    },
  };
}
