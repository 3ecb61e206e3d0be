/**
 * Scenario `pushback`: one of three endpoints asks its clients to stay away — for a period it
 * answers every request with `Retry-After: 2`, as 503 (retryable) and, in a second case, as
 * 429 (not retried: a rate-limited server). A real `mesh-proxy` (outbound, one service over
 * the three endpoints, its default retry: 5xx once on the default budget) carries an open
 * loop, with the balancer's pushback on (the default) and off (`balancer.pushback.max: 0`).
 * Reported from the endpoints' own arrival timelines: the pushing endpoint's share of the
 * requests during the period and how long until it drops, the requests the client saw
 * fail, the retries the proxy spent (endpoint requests − client requests) and the p99.
 */
import type { BenchContext } from "../lib/context.ts";
import {
  type Chart,
  check,
  fmt,
  fmtPercentSpread,
  fmtSpread,
  type ScenarioOutput,
  settlePeerStatuses,
  splitAvailable,
  statusNote,
  type Table,
} from "../lib/result.ts";
import { type Backend, runFailureReason, runLoad, startBackend } from "../lib/runners.ts";
import { round, type Spread, spread } from "../lib/stats.ts";
import { meshUnavailableReason } from "../load/mesh-adapters.ts";
import { failedOf, type OpenLoopResult } from "../load/open-loop.ts";
import type { BackendStats } from "../peers/backend.ts";
import { startMeshBalancingHop } from "../peers/mesh.ts";

const ENDPOINTS = 3;
const RATE = 300;
const RETRY_AFTER_S = 2;
/** The share of the period's traffic below which the pushing endpoint counts as avoided. */
const AVOIDED_SHARE = 0.05;
/** Buckets (100 ms) the share must stay below {@link AVOIDED_SHARE} to count as dropped. */
const SUSTAIN_BUCKETS = 5;
/** @mesh/retry's default budget: 20 % of requests plus 10 retries/s. */
const BUDGET_RATIO = 0.2;
const BUDGET_MIN_PER_S = 10;

/** What the pushing endpoint answers during the period. */
const CASES = [
  {
    name: "503",
    describe: `e0 answers 503 + Retry-After: ${RETRY_AFTER_S} (retryable: the proxy retries it once, after the Retry-After)`,
    failStatus: 503,
  },
  {
    name: "429",
    describe: `e0 answers 429 + Retry-After: ${RETRY_AFTER_S} (rate limited: not retried, not a failure to failure accrual)`,
    failStatus: 429,
  },
] as const;
type Case = (typeof CASES)[number];

interface Variant {
  name: string;
  describe: string;
  service: object;
  unavailable(): Promise<string | null>;
}

const VARIANTS: Variant[] = [
  {
    name: "pushback",
    describe:
      "mesh-proxy, balancer pushback at its defaults (an endpoint answering Retry-After costs 1000× for that long, ≤ 10 s)",
    service: {},
    unavailable: () => meshUnavailableReason("proxy"),
  },
  {
    name: "no-pushback",
    describe:
      "mesh-proxy with balancer.pushback.max: 0 (Retry-After ignored by the balancer; failure cost and accrual still on)",
    service: { balancer: { pushback: { max: 0 } } },
    unavailable: () => meshUnavailableReason("proxy"),
  },
];

interface RunResult {
  offered: number;
  failed: number;
  failedShare: number;
  p50Ms: number;
  p99Ms: number;
  /** e0's share of endpoint requests during the period. */
  periodShare: number;
  /** e0's share during the period after its first second. */
  settledShare: number;
  /** ms from the period's start until e0's share stays below AVOIDED_SHARE (null: never). */
  dropMs: number | null;
  /** Endpoint requests beyond the client's requests (the proxy's retries). */
  retries: number;
  /** Retries the default budget allows over the run. */
  retryBudget: number;
  /** e0's share per 100 ms bucket, s from the load's start → share. */
  shareTimeline: Array<[number, number]>;
}

/** e0's share of the endpoints' arrivals per bucket between two epoch times. */
function sharesBetween(
  stats: BackendStats,
  fromEpochMs: number,
  toEpochMs: number,
): Array<{ atMs: number; e0: number; all: number }> {
  // Whole buckets inside the window only.
  const first = Math.max(0, Math.ceil((fromEpochMs - stats.sinceEpochMs) / stats.bucketMs));
  const last = Math.floor((toEpochMs - stats.sinceEpochMs) / stats.bucketMs);
  const out: Array<{ atMs: number; e0: number; all: number }> = [];
  for (let b = first; b < last; b++) {
    const all = stats.endpoints.reduce((n, e) => n + (e.timeline[b] ?? 0), 0);
    out.push({
      atMs: stats.sinceEpochMs + b * stats.bucketMs,
      e0: stats.endpoints[0]!.timeline[b] ?? 0,
      all,
    });
  }
  return out;
}

/** Runs the pushback scenario. */
export async function pushback(ctx: BenchContext): Promise<ScenarioOutput> {
  const durationMs = ctx.quick ? 3_000 : 12_000;
  const periodFromMs = ctx.quick ? 500 : 3_000;
  const periodToMs = ctx.quick ? 2_500 : 9_000;
  const warmupMs = ctx.quick ? 500 : 2_000;
  const { peers, active } = await splitAvailable(VARIANTS);
  const backend: Backend = await startBackend(ctx, {
    endpoints: Array.from({ length: ENDPOINTS }, (_, i) => ({ name: `e${i}` })),
  });
  const runs: Record<string, RunResult[]> = {};
  const failures = new Map<string, string>();

  const runOnce = async (c: Case, variant: Variant): Promise<RunResult> => {
    const hop = await startMeshBalancingHop(
      ctx,
      `mesh-${variant.name}`,
      backend.endpoints.map((e) => e.port),
      variant.service,
    );
    try {
      // After the load worker's start (~1 s) and warm-up.
      const startAt = Date.now() + 1_000 + warmupMs + (ctx.quick ? 500 : 1_000);
      const from = startAt + periodFromMs;
      const to = startAt + periodToMs;
      await backend.configure({
        reset: true,
        endpoints: {
          e0: {
            phases: [
              {
                fromEpochMs: from,
                toEpochMs: to,
                failRatio: 1,
                failStatus: c.failStatus,
                failHeaders: { "retry-after": String(RETRY_AFTER_S) },
              },
            ],
          },
        },
      });
      const r = await runLoad<OpenLoopResult>(ctx, {
        mode: "open",
        client: { kind: "pool", origin: new URL(hop.url).origin, connections: 32 },
        path: "/",
        rate: RATE,
        durationMs,
        warmupMs,
        drainTimeoutMs: 10_000,
        startAtEpochMs: startAt,
      });
      const stats = await backend.stats();
      const inPeriod = sharesBetween(stats, from, to);
      const sum = (xs: typeof inPeriod, k: "e0" | "all") => xs.reduce((n, x) => n + x[k], 0);
      const settled = inPeriod.filter((x) => x.atMs >= from + 1_000);
      let dropMs: number | null = null;
      for (let i = 0; i + SUSTAIN_BUCKETS <= inPeriod.length; i++) {
        const w = inPeriod.slice(i, i + SUSTAIN_BUCKETS);
        if (sum(w, "e0") < AVOIDED_SHARE * sum(w, "all")) {
          dropMs = Math.max(0, inPeriod[i]!.atMs - from);
          break;
        }
      }
      const endpointRequests = stats.endpoints.reduce((n, e) => n + e.requests, 0);
      const clientRequests = r.offered + (r as { warmupCompleted?: number }).warmupCompleted!;
      const whole = sharesBetween(stats, startAt, startAt + durationMs);
      return {
        offered: r.offered,
        failed: failedOf(r),
        failedShare: round(failedOf(r) / r.offered, 5),
        p50Ms: r.latencyMs.p50,
        p99Ms: r.latencyMs.p99,
        periodShare: round(sum(inPeriod, "e0") / Math.max(1, sum(inPeriod, "all")), 4),
        settledShare: round(sum(settled, "e0") / Math.max(1, sum(settled, "all")), 4),
        dropMs,
        retries: Math.max(0, endpointRequests - clientRequests),
        retryBudget: Math.round(
          BUDGET_RATIO * clientRequests +
            (BUDGET_MIN_PER_S * (durationMs + warmupMs)) / 1000 +
            BUDGET_MIN_PER_S * 10,
        ),
        shareTimeline: whole.map((x) => [
          round((x.atMs - startAt) / 1000, 1),
          x.all === 0 ? 0 : round(x.e0 / x.all, 3),
        ]),
      };
    } finally {
      await ctx.pm.stop(hop.proc);
    }
  };

  try {
    for (let round_ = 0; round_ < ctx.rounds; round_++) {
      const order = active.map((_, i) => active[(i + round_) % active.length]!);
      for (const c of CASES) {
        for (const variant of order) {
          if (failures.has(variant.name)) continue;
          ctx.log(`pushback: round ${round_ + 1}/${ctx.rounds} ${c.name}: ${variant.name}`);
          try {
            const key = `${c.name}/${variant.name}`;
            runs[key] = [...(runs[key] ?? []), await runOnce(c, variant)];
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

  const summary: Record<string, Record<string, Spread | null>> = {};
  for (const [key, r] of Object.entries(runs)) {
    summary[key] = {
      periodShare: spread(r.map((x) => x.periodShare)),
      settledShare: spread(r.map((x) => x.settledShare)),
      dropMs: spread(r.map((x) => x.dropMs)),
      failed: spread(r.map((x) => x.failed)),
      failedShare: spread(r.map((x) => x.failedShare)),
      retries: spread(r.map((x) => x.retries)),
      retryBudget: spread(r.map((x) => x.retryBudget)),
      p50Ms: spread(r.map((x) => x.p50Ms)),
      p99Ms: spread(r.map((x) => x.p99Ms)),
    };
  }
  const pct = fmtPercentSpread;
  const periodS = (periodToMs - periodFromMs) / 1000;
  const tables: Table[] = CASES.map((c) => ({
    title: `${c.describe}, for ${periodS} s of ${durationMs / 1000} s at ${RATE} rps over ${ENDPOINTS} endpoints (fair share 33 %; median (min–max) of ${ctx.rounds} round(s))`,
    columns: [
      "proxy",
      "e0 share in period %",
      "e0 share after its 1st s %",
      "time to drop below 5 % (ms)",
      "client failures",
      "client failures %",
      "retries (budget)",
      "p50 ms",
      "p99 ms",
    ],
    rows: active
      .filter((v) => summary[`${c.name}/${v.name}`] !== undefined)
      .map((v) => {
        const s = summary[`${c.name}/${v.name}`]!;
        return [
          v.name,
          pct(s.periodShare),
          pct(s.settledShare),
          s.dropMs ? fmtSpread(s.dropMs, 0) : "never",
          fmtSpread(s.failed, 0),
          pct(s.failedShare, 2),
          `${fmtSpread(s.retries, 0)} (${fmtSpread(s.retryBudget, 0)})`,
          fmtSpread(s.p50Ms, 1),
          fmtSpread(s.p99Ms, 1),
        ];
      }),
  }));
  const why = (name: string) => statusNote(peers, name);
  const targets = CASES.flatMap((c) => {
    const s = summary[`${c.name}/pushback`];
    return [
      check(
        `${c.name} + Retry-After: time until the pushing endpoint's share drops below 5 %`,
        "< 1 s",
        s?.dropMs?.median,
        (v) => v < 1_000,
        (v) => `${fmt(v, 0)} ms`,
        why("pushback") ?? "never dropped",
      ),
      check(
        `${c.name} + Retry-After: pushing endpoint's share after the period's first second`,
        "≤ 2 % (near 0; a request every Retry-After re-checks it)",
        s?.settledShare?.median,
        (v) => v <= 0.02,
        (v) => `${fmt(v * 100, 2)} %`,
        why("pushback"),
      ),
      check(
        `${c.name} + Retry-After: requests the client saw fail`,
        c.failStatus === 503
          ? "≤ 0.1 % of offered (retries cover the rest)"
          : "≤ 1 % of offered (429s are not retried: those sent before the first 429 came back, and one per Retry-After)",
        s?.failedShare?.median,
        (v) => v <= (c.failStatus === 503 ? 0.001 : 0.01),
        (v) => `${fmt(v * 100, 3)} %`,
        why("pushback"),
      ),
      check(
        `${c.name} + Retry-After: retries the proxy spent`,
        "within the default budget (20 % + 10/s)",
        s?.retries?.median === undefined || s.retryBudget?.median === undefined
          ? undefined
          : s.retries.median / s.retryBudget.median,
        (v) => v <= 1,
        (v) => `${fmt(v * 100, 1)} % of the budget`,
        why("pushback"),
      ),
    ];
  });
  const first = (name: string) => runs[`503/${name}`]?.[0]?.shareTimeline ?? [];
  const charts: Chart[] = [
    {
      kind: "lines",
      file: "pushback.svg",
      title: `e0's share of requests; it answers 503 + Retry-After: ${RETRY_AFTER_S} from ${periodFromMs / 1000} s to ${periodToMs / 1000} s (round 1)`,
      xLabel: "s",
      yLabel: "share",
      series: active.map((v) => ({ name: v.name, points: first(v.name) })),
    },
  ];
  return {
    notes: [
      `open loop, ${RATE} rps, ${warmupMs / 1000} s warm-up, undici Pool (32 connections) → mesh-proxy outbound (HTTP/1.1 to ${ENDPOINTS} endpoints, retry at its defaults: 5xx once, default budget) → e0..e${ENDPOINTS - 1}; a fresh proxy per run`,
      "shares are from the endpoints' own arrival counts in 100 ms buckets (retries included); 'time to drop' is from the period's start to the first 500 ms in which e0 got < 5 % of the requests",
      `retries = requests the endpoints received − requests the client sent; the budget shown is 20 % of those + 10/s over the run + the 10 s reserve (${BUDGET_MIN_PER_S}/s × 10 s)`,
      `a retried 503 waits the Retry-After (${RETRY_AFTER_S} s, @mesh/retry honours it), which is what the p99 shows; a 429 is not retried by default, so the client sees every one`,
    ],
    peers,
    targets,
    tables,
    charts,
    data: {
      rate: RATE,
      durationMs,
      periodMs: [periodFromMs, periodToMs],
      retryAfterS: RETRY_AFTER_S,
      runs,
      summary,
    },
  };
}
