/**
 * Scenario `success-rate`: failure accrual on an endpoint that fails often but never many
 * times in a row. Of three endpoints, e0 answers 503 to 40 % of its requests in a fixed
 * pattern (`x.x..`: never two failures in a row), which the consecutive-failures breaker (7
 * in a row) can never see. A real `mesh-proxy` (outbound, one service over the three, its
 * default retry: 5xx once) carries an open loop with `failureAccrual.mode`
 * `consecutive-failures` (the default) and `success-rate` (linkerd2's success-rate breaker:
 * below 80 % over 10 s with ≥ 20 requests ejects), each also with the balancer's failure
 * cost off (`failureCostFactor: 0`) so the breaker is seen alone. Reported: e0's share of
 * the traffic, the failures it answered, the failures the client saw, when e0 was first
 * ejected (the admin `/endpoints`, polled) and how often.
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
import { startMeshBalancingHop } from "../peers/mesh.ts";

const ENDPOINTS = 3;
const RATE = 300;
/** e0's failures by arrival: 40 %, never two in a row. */
const FAIL_PATTERN = "x.x..";
const FAIL_SHARE = 0.4;
/** How often the harness reads the proxy's `/endpoints` while the load runs. */
const POLL_MS = 50;
/** Chart resolution (backend buckets are 100 ms). */
const CHART_BUCKET_MS = 500;
/** linkerd2's defaults, as the proxy's: 80 % over a 10 s window. */
const WINDOW_S = 10;
const THRESHOLD = 0.8;
/**
 * `--quick` (a 6 s smoke run, e.g. in the test suite): the success-rate breaker watches a 2 s
 * window over at least 3 requests, so the short warm-up's successes slide out within the run
 * and an ejection fits whatever share of the traffic the balancer still gives e0 (any 3 of
 * e0's requests in a row hold a failure of `x.x..`: at most 67 % success). With the
 * 10 s default the breaker needs ~50 of e0's requests after the warm-up, and e0's share
 * swings between runs (1–60 % even without the failure cost): one CI run in three saw no
 * ejection within 6 s. Full runs keep linkerd2's defaults.
 */
const QUICK_SUCCESS_RATE = { window: "2s", minRequests: 3 };

/** The service config a variant runs with (see {@link QUICK_SUCCESS_RATE}). */
function serviceFor(variant: Variant, quick: boolean): object {
  const accrual = (variant.service as { failureAccrual?: { mode?: string } }).failureAccrual;
  if (!quick || accrual?.mode !== "success-rate") return variant.service;
  return { ...variant.service, failureAccrual: { ...accrual, successRate: QUICK_SUCCESS_RATE } };
}

/** When a steady endpoint's full window of successes has slid far enough for the rate to trip. */
const EXPECTED_EJECTION_S = round((WINDOW_S * (1 - THRESHOLD)) / FAIL_SHARE, 1);

interface Variant {
  name: string;
  describe: string;
  service: object;
  unavailable(): Promise<string | null>;
}

const proxy = () => meshUnavailableReason("proxy");
const VARIANTS: Variant[] = [
  {
    name: "consecutive",
    describe: "failureAccrual at its defaults: 7 consecutive failures eject",
    service: {},
    unavailable: proxy,
  },
  {
    name: "success-rate",
    describe:
      "failureAccrual.mode: success-rate (defaults: < 80 % success over 10 s with ≥ 20 requests ejects)",
    service: { failureAccrual: { mode: "success-rate" } },
    unavailable: proxy,
  },
  {
    name: "consecutive, no failure cost",
    describe: "consecutive failures, balancer.failureRate.failureCostFactor: 0 (the breaker alone)",
    service: { balancer: { failureRate: { failureCostFactor: 0 } } },
    unavailable: proxy,
  },
  {
    name: "success-rate, no failure cost",
    describe: "success-rate, balancer.failureRate.failureCostFactor: 0 (the breaker alone)",
    service: {
      failureAccrual: { mode: "success-rate" },
      balancer: { failureRate: { failureCostFactor: 0 } },
    },
    unavailable: proxy,
  },
];

interface RunResult {
  offered: number;
  clientFailed: number;
  clientFailedShare: number;
  p99Ms: number;
  /** e0's share of all endpoint requests in the measured window. */
  e0Share: number;
  /** Failures e0 answered in the measured window (each one a retry or a client failure). */
  e0Failures: number;
  /** ms from the load's start to e0's first ejection, null when never ejected. */
  firstEjectionMs: number | null;
  /** Polls that saw e0 ejected or probing, as a share of all polls. */
  ejectedShare: number;
  /** e0's share of requests per CHART_BUCKET_MS, s from the load's start → share. */
  shareTimeline: Array<[number, number]>;
}

interface AdminEndpoint {
  address: string;
  state: string;
}

async function endpointStates(admin: string): Promise<AdminEndpoint[]> {
  const res = await fetch(`http://${admin}/endpoints`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`proxy admin /endpoints: HTTP ${res.status}`);
  const body = (await res.json()) as { backends: { endpoints: AdminEndpoint[] }[] }[];
  return body.flatMap((s) => s.backends.flatMap((b) => b.endpoints));
}

/** Runs the success-rate scenario. */
export async function successRate(ctx: BenchContext): Promise<ScenarioOutput> {
  // Quick runs too leave room for the first ejection (~0.5–3 s after the failures start,
  // later on a loaded machine): 3 s missed it in one CI run.
  const durationMs = ctx.quick ? 6_000 : 20_000;
  // Healthy for a whole success-rate window first (full mode), as an endpoint that turns
  // flaky in production: its window is full of successes when the failures start.
  const warmupMs = ctx.quick ? 500 : 10_000;
  const { peers, active } = await splitAvailable(VARIANTS);
  const backend: Backend = await startBackend(ctx, {
    endpoints: Array.from({ length: ENDPOINTS }, (_, i) => ({ name: `e${i}` })),
  });
  const e0Address = `127.0.0.1:${backend.endpoints[0]!.port}`;
  const runs: Record<string, RunResult[]> = {};
  const failures = new Map<string, string>();

  const runOnce = async (variant: Variant): Promise<RunResult> => {
    const hop = await startMeshBalancingHop(
      ctx,
      "mesh-outbound",
      backend.endpoints.map((e) => e.port),
      serviceFor(variant, ctx.quick),
    );
    try {
      // After the load worker's start (~1 s) and warm-up.
      const startAt = Date.now() + 1_000 + warmupMs + (ctx.quick ? 500 : 1_000);
      // e0 is healthy through the warm-up and flaky from the measured window's start.
      await backend.configure({
        reset: true,
        endpoints: { e0: { phases: [{ fromEpochMs: startAt, failPattern: FAIL_PATTERN }] } },
      });
      const polls: Array<{ atMs: number; out: boolean }> = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const atMs = Date.now() - startAt;
          const e0 = (await endpointStates(hop.admin)).find((e) => e.address === e0Address);
          if (atMs >= 0 && atMs <= durationMs)
            polls.push({ atMs, out: e0 !== undefined && e0.state !== "ready" });
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      })();
      let r: OpenLoopResult;
      try {
        r = await runLoad<OpenLoopResult>(ctx, {
          mode: "open",
          client: { kind: "pool", origin: new URL(hop.url).origin, connections: 32 },
          path: "/",
          rate: RATE,
          durationMs,
          warmupMs,
          drainTimeoutMs: 10_000,
          startAtEpochMs: startAt,
        });
      } finally {
        polling = false;
        await poller;
      }
      const stats = await backend.stats();
      const bucket = (epochMs: number) =>
        Math.floor((epochMs - stats.sinceEpochMs) / stats.bucketMs);
      const from = bucket(startAt);
      const to = bucket(startAt + durationMs);
      const count = (e: number, a: number, b: number) =>
        stats.endpoints[e]!.timeline.slice(a, b).reduce((n, x) => n + x, 0);
      const all = (a: number, b: number) =>
        stats.endpoints.reduce((n, _e, i) => n + count(i, a, b), 0);
      const per = CHART_BUCKET_MS / stats.bucketMs;
      const shareTimeline: Array<[number, number]> = [];
      for (let b = from; b + per <= to; b += per) {
        const n = all(b, b + per);
        shareTimeline.push([
          round(((b - from) * stats.bucketMs) / 1000, 1),
          n === 0 ? 0 : round(count(0, b, b + per) / n, 3),
        ]);
      }
      const firstOut = polls.find((p) => p.out);
      return {
        offered: r.offered,
        clientFailed: failedOf(r),
        clientFailedShare: round(failedOf(r) / r.offered, 5),
        p99Ms: r.latencyMs.p99,
        e0Share: round(count(0, from, to) / Math.max(1, all(from, to)), 4),
        e0Failures: stats.endpoints[0]!.failed,
        firstEjectionMs: firstOut ? firstOut.atMs : null,
        ejectedShare: round(polls.filter((p) => p.out).length / Math.max(1, polls.length), 3),
        shareTimeline,
      };
    } finally {
      await ctx.pm.stop(hop.proc);
    }
  };

  try {
    for (let round_ = 0; round_ < ctx.rounds; round_++) {
      const order = active.map((_, i) => active[(i + round_) % active.length]!);
      for (const variant of order) {
        if (failures.has(variant.name)) continue;
        ctx.log(`success-rate: round ${round_ + 1}/${ctx.rounds} ${variant.name}`);
        try {
          runs[variant.name] = [...(runs[variant.name] ?? []), await runOnce(variant)];
        } catch (error) {
          failures.set(variant.name, runFailureReason(error));
        }
      }
    }
  } finally {
    await ctx.pm.stop(backend.proc);
  }
  settlePeerStatuses(peers, active, failures, VARIANTS);

  const summary: Record<string, Record<string, Spread | null>> = {};
  for (const [name, r] of Object.entries(runs)) {
    summary[name] = {
      e0Share: spread(r.map((x) => x.e0Share)),
      e0Failures: spread(r.map((x) => x.e0Failures)),
      clientFailed: spread(r.map((x) => x.clientFailed)),
      clientFailedShare: spread(r.map((x) => x.clientFailedShare)),
      firstEjectionMs: spread(r.map((x) => x.firstEjectionMs)),
      ejectedShare: spread(r.map((x) => x.ejectedShare)),
      p99Ms: spread(r.map((x) => x.p99Ms)),
    };
  }
  const pct = fmtPercentSpread;
  const never = (name: string) => (runs[name] ?? []).filter((x) => x.firstEjectionMs === null);
  const tables: Table[] = [
    {
      title: `e0 of ${ENDPOINTS} fails ${FAIL_SHARE * 100} % of its requests (pattern ${FAIL_PATTERN}, never twice in a row), ${RATE} rps for ${durationMs / 1000} s (fair share 33 %; median (min–max) of ${ctx.rounds} round(s))`,
      columns: [
        "failure accrual",
        "e0 share %",
        "failures e0 answered",
        "client failures",
        "client failures %",
        "first ejection (ms after start)",
        "time e0 out of the balancer %",
        "p99 ms",
      ],
      rows: active
        .filter((v) => summary[v.name] !== undefined)
        .map((v) => {
          const s = summary[v.name]!;
          const notEjected = never(v.name).length;
          return [
            v.name,
            pct(s.e0Share),
            fmtSpread(s.e0Failures, 0),
            fmtSpread(s.clientFailed, 0),
            pct(s.clientFailedShare, 2),
            s.firstEjectionMs
              ? `${fmtSpread(s.firstEjectionMs, 0)}${notEjected > 0 ? ` (never in ${notEjected} round(s))` : ""}`
              : "never",
            pct(s.ejectedShare),
            fmtSpread(s.p99Ms, 1),
          ];
        }),
    },
  ];
  const why = (name: string) => statusNote(peers, name);
  const sr = summary["success-rate"];
  const cons = summary.consecutive;
  const targets = [
    check(
      "consecutive failures: e0 ejected (it never fails twice in a row)",
      "never (rounds in which it was ejected)",
      runs.consecutive ? runs.consecutive.length - never("consecutive").length : undefined,
      (v) => v === 0,
      (v) => `ejected in ${fmt(v, 0)} of ${runs.consecutive?.length} round(s)`,
      why("consecutive"),
    ),
    check(
      "success-rate, breaker alone (no failure cost): time to e0's first ejection",
      ctx.quick
        ? "≤ 2 s (quick: a 2 s window over ≥ 3 requests, holding only the short warm-up's successes)"
        : `≤ ${EXPECTED_EJECTION_S + 1} s (window × (1 − threshold) / failure share = ${EXPECTED_EJECTION_S} s after a healthy window)`,
      never("success-rate, no failure cost").length > 0
        ? Number.NaN
        : summary["success-rate, no failure cost"]?.firstEjectionMs?.median,
      (v) => v <= (ctx.quick ? 2 : EXPECTED_EJECTION_S + 1) * 1000,
      (v) => `${fmt(v, 0)} ms`,
      why("success-rate, no failure cost") ?? "not ejected in every round",
    ),
    check(
      "success-rate (defaults): e0 ejected during the run",
      "in every round",
      runs["success-rate"] ? runs["success-rate"].length - never("success-rate").length : undefined,
      (v) => v === runs["success-rate"]?.length,
      (v) => `ejected in ${fmt(v, 0)} of ${runs["success-rate"]?.length} round(s)`,
      why("success-rate"),
    ),
    check(
      "success-rate: e0's share of the traffic vs consecutive failures",
      "< consecutive's",
      sr?.e0Share?.median,
      (v) => cons?.e0Share?.median !== undefined && v < cons.e0Share.median,
      (v) => `${fmt(v * 100, 2)} % vs ${fmt((cons?.e0Share?.median ?? Number.NaN) * 100, 2)} %`,
      why("success-rate") ?? why("consecutive"),
    ),
    check(
      "success-rate, breaker alone (no failure cost): e0's share vs consecutive alone",
      "≤ 0.5× consecutive's",
      summary["success-rate, no failure cost"]?.e0Share?.median,
      (v) => {
        const c = summary["consecutive, no failure cost"]?.e0Share?.median;
        return c !== undefined && v <= 0.5 * c;
      },
      (v) =>
        `${fmt(v * 100, 2)} % vs ${fmt((summary["consecutive, no failure cost"]?.e0Share?.median ?? Number.NaN) * 100, 2)} %`,
      why("success-rate, no failure cost") ?? why("consecutive, no failure cost"),
    ),
    check(
      "success-rate: requests the client saw fail",
      "≤ 0.1 % (the proxy's one retry covers the rest)",
      sr?.clientFailedShare?.median,
      (v) => v <= 0.001,
      (v) => `${fmt(v * 100, 3)} %`,
      why("success-rate"),
    ),
  ];
  const charts: Chart[] = [
    {
      kind: "lines",
      file: "success-rate.svg",
      title: `e0's share of requests (fails ${FAIL_SHARE * 100} %, never twice in a row), round 1`,
      xLabel: "s",
      yLabel: "share",
      series: active.map((v) => ({ name: v.name, points: runs[v.name]?.[0]?.shareTimeline ?? [] })),
    },
  ];
  return {
    notes: [
      `open loop, ${RATE} rps, undici Pool (32 connections) → mesh-proxy outbound (HTTP/1.1 to ${ENDPOINTS} endpoints, retry at its defaults: 5xx once on the default budget) → e0..e${ENDPOINTS - 1}; a fresh proxy per run, ${warmupMs / 1000} s warm-up with every endpoint healthy, then e0 turns flaky for the ${durationMs / 1000} s measured`,
      "with the failure cost on (the default), a success-rate ejection can leave e0 more traffic than no ejection: a probe that succeeds (60 % of e0's answers do) restores it with its failure rate forgotten and its penalty back at 1 s, so it competes at full share until the failure cost has learned it again, where the consecutive mode (never ejecting) keeps the learned cost",
      "by default the balancer also prices failures into an endpoint's cost (cost × exp(15 × failure rate)), which steers P2C away from e0 whatever the breaker does; the 'no failure cost' variants turn that off to show the breakers alone",
      `time to ejection: a window full of successes (the healthy warm-up) slides out over ${WINDOW_S} s; the rate falls below ${THRESHOLD * 100} % after window × (1 − threshold) / failure share = ${EXPECTED_EJECTION_S} s if e0 keeps its share (less traffic to e0, as with the failure cost on, means fewer new failures and a later trip)`,
      `ejection is read from the proxy's admin /endpoints every ${POLL_MS} ms (e0 not 'ready' = ejected or probing); an ejected endpoint is probed after 1 s × 2^k (+ jitter), and one success restores it`,
    ],
    peers,
    targets,
    tables,
    charts,
    data: { rate: RATE, durationMs, failPattern: FAIL_PATTERN, runs, summary },
  };
}
