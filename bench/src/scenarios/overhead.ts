/**
 * Scenario `overhead`: what each proxy adds over talking to the backend directly.
 * Per round, every available peer is started in turn (the order rotates each round), warmed
 * up, then measured: open-loop latency at 500/1000/2000 rps (CO-corrected), closed-loop max
 * rps, RSS idle and under load, CPU-seconds per 10k requests. Added latency is computed per
 * round against that round's direct run, then summarised as median (min–max).
 */
import type { BenchContext } from "../lib/context.ts";
import { cpuSeconds, rssMb, sampleRss } from "../lib/proc.ts";
import {
  type Chart,
  check,
  fmtSpread,
  type PeerStatus,
  type ScenarioOutput,
  settlePeerStatuses,
  statusNote,
  type Table,
  type TargetCheck,
} from "../lib/result.ts";
import {
  type MaxThroughput,
  runLoad,
  runMaxThroughput,
  startBackend,
  WARMUP,
  warmUp,
  warmUpMs,
} from "../lib/runners.ts";
import { ratio, round, type Spread, spread } from "../lib/stats.ts";
import { failedOf, type OpenLoopResult, type Percentiles } from "../load/open-loop.ts";
import { meshDesignPairs, referencePairs } from "../peers/pairs.ts";
import { OVERHEAD_PEERS, type PeerDefinition } from "../peers/proxies.ts";
import {
  type ColdStartSummary,
  coldStartTable,
  MESH_DESIGN_PAIRS,
  MESH_PAIR,
  type PairMetric,
  pairsTable,
  REFERENCE_PAIRS,
} from "../report/pairs.ts";

const PCTS = ["p50", "p90", "p99", "p999"] as const;
type Pct = (typeof PCTS)[number];

interface RateRound {
  latencyMs: Percentiles;
  achievedRps: number;
  offered: number;
  ok: number;
  failed: number;
  cpuSecPer10k: number | null;
  rssMaxMb: number | null;
}

/** One proxy process of a peer (both proxies of a pair): RSS and CPU on its own. */
interface ProcRound {
  name: string;
  rssIdleMb: number | null;
  /** Right after the 1000 rps run, and right after the closed-loop max run. */
  rssAfter1000Mb: number | null;
  rssAfterMaxMb: number | null;
  cpuUsPerReqAt1000: number | null;
  cpuUsPerReqAtMax: number | null;
}

/** The per-proxy columns of the pairs, in table order. */
const PROC_COLUMNS = [
  "rssIdleMb",
  "rssAfter1000Mb",
  "rssAfterMaxMb",
  "cpuUsPerReqAt1000",
  "cpuUsPerReqAtMax",
] as const;

/** The first requests a freshly started peer served (the steady-state warm-up, recorded). */
interface ColdStart {
  /** Offered and completed; latency is null when none completed. */
  offered: number;
  requests: number;
  latencyMs: Percentiles | null;
  failed: number;
  errors: number;
  timedOut: number;
}

interface PeerRound {
  round: number;
  rssIdleMb: number | null;
  rates: Record<string, RateRound>;
  max: (MaxThroughput & { cpuUsPerReq: number | null }) | null;
  coldStart?: ColdStart;
  procs?: ProcRound[];
}

interface PeerSummary {
  rssIdleMb: Spread | null;
  coldStart: ColdStartSummary & { requests: Spread | null; max: Spread | null };
  byRate: Record<string, Record<string, Spread | null>>;
  maxRps: Spread | null;
  cpuUsPerReqAtMax: Spread | null;
}

function roundOrNull(v: number | null, digits: number): number | null {
  return v === null ? null : round(v, digits);
}

/** CPU µs per request between two CPU-seconds readings. */
function usPerReq(c0: number | null | undefined, c1: number | null | undefined, requests: number) {
  return typeof c0 === "number" && typeof c1 === "number" && requests > 0
    ? round(((c1 - c0) / requests) * 1e6, 2)
    : null;
}

function sum(values: Array<number | null>): number | null {
  if (values.some((v) => v === null)) return null;
  return (values as number[]).reduce((a, b) => a + b, 0);
}

async function measurePeer(
  ctx: BenchContext,
  peer: PeerDefinition,
  upstreamPort: number,
  rates: number[],
  durationMs: number,
  maxDurationMs: number,
  round_: number,
): Promise<{ result: PeerRound; notes: string[] }> {
  const running = await peer.start(ctx, upstreamPort);
  try {
    const pids = running.procs.map((p) => p.pid);
    const cpu = () => (pids.length ? sum(pids.map(cpuSeconds)) : null);
    const rss = () => (pids.length ? sum(pids.map(rssMb)) : null);
    const rssIdleMb = rss();
    const procs: ProcRound[] = running.procs.map((p) => ({
      name: p.name,
      rssIdleMb: roundOrNull(rssMb(p.pid), 1),
      rssAfter1000Mb: null,
      rssAfterMaxMb: null,
      cpuUsPerReqAt1000: null,
      cpuUsPerReqAtMax: null,
    }));
    const perProcCpu = () => running.procs.map((p) => cpuSeconds(p.pid));
    const url = new URL(running.url);
    const client = { kind: "pool" as const, origin: url.origin, connections: 16 };
    // Steady state first (JIT, connection pools): its latency is the cold-start measure.
    const cold = await warmUp(ctx, client);
    const coldStart: ColdStart = {
      offered: cold.offered,
      requests: cold.completed,
      latencyMs: cold.completed > 0 ? cold.latencyMs : null,
      failed: failedOf(cold),
      errors: cold.errors,
      timedOut: cold.timedOut,
    };
    const rateResults: Record<string, RateRound> = {};
    for (const rate of rates) {
      const p0 = perProcCpu();
      const samplers = pids.map((pid) => sampleRss(pid, 100));
      const c0 = cpu();
      const r = await runLoad<OpenLoopResult & { warmupCompleted: number }>(ctx, {
        mode: "open",
        client,
        path: "/",
        rate,
        durationMs,
        // The generator warms its own JIT and connections at the same rate first.
        warmupMs: ctx.quick ? 100 : 1000,
        drainTimeoutMs: 5000,
      });
      const c1 = cpu();
      const rssMax = pids.length ? sum(samplers.map((s) => s.stop())) : null;
      if (rate === 1000) {
        const p1 = perProcCpu();
        procs.forEach((p, i) => {
          p.rssAfter1000Mb = roundOrNull(rssMb(pids[i]!), 1);
          p.cpuUsPerReqAt1000 = usPerReq(p0[i], p1[i], r.completed + r.warmupCompleted);
        });
      }
      rateResults[rate] = {
        latencyMs: r.latencyMs,
        achievedRps: r.achievedRps,
        offered: r.offered,
        ok: r.ok,
        failed: failedOf(r),
        // CPU covers the warm-up too, so divide by every request the proxy served.
        cpuSecPer10k:
          c0 !== null && c1 !== null && r.completed > 0
            ? round(((c1 - c0) / (r.completed + r.warmupCompleted)) * 10_000, 4)
            : null,
        rssMaxMb: rssMax === null ? null : round(rssMax, 1),
      };
    }
    const c0 = cpu();
    const p0 = perProcCpu();
    const max = await runMaxThroughput(ctx, running.url, maxDurationMs, 32);
    const c1 = cpu();
    const p1 = perProcCpu();
    procs.forEach((p, i) => {
      p.rssAfterMaxMb = roundOrNull(rssMb(pids[i]!), 1);
      p.cpuUsPerReqAtMax = usPerReq(p0[i], p1[i], max.requests);
    });
    const cpuUsPerReq = usPerReq(c0, c1, max.requests);
    return {
      result: {
        round: round_,
        rssIdleMb: rssIdleMb === null ? null : round(rssIdleMb, 1),
        rates: rateResults,
        max: { ...max, cpuUsPerReq },
        coldStart,
        procs,
      },
      notes: running.notes ?? [],
    };
  } finally {
    for (const p of running.procs) await ctx.pm.stop(p);
  }
}

/** Runs the overhead scenario. */
export async function overhead(ctx: BenchContext): Promise<ScenarioOutput> {
  const rates = [500, 1000, 2000];
  const durationMs = ctx.quick ? 300 : 6000;
  const maxDurationMs = ctx.quick ? 1000 : 5000;
  const notes: string[] = [
    `open loop: ${durationMs / 1000} s per rate, 16 connections, latency from the intended send time (coordinated omission corrected); closed loop: ${maxDurationMs / 1000} s, 32 connections`,
    "added latency = peer percentile − direct percentile in the same round; summaries are median (min–max) over rounds",
    "CPU and RSS are of the proxy process(es) only (summed for the sidecar pair); the backend is a node:http server answering 'ok'",
    `every peer is measured in its steady state, as a long-running sidecar is: after ${(WARMUP.rate * warmUpMs(ctx)) / 1000} requests at ${WARMUP.rate} rps (RSS idle is taken before them), by which time V8 has optimized the Node peers' per-request code`,
  ];
  // The reference pairs sit next to the @mesh sidecar pair (issue 17).
  const declared = [...OVERHEAD_PEERS, ...meshDesignPairs(), ...referencePairs("http1")];
  const statuses: PeerStatus[] = [];
  const available: PeerDefinition[] = [];
  for (const peer of declared) {
    const reason = await peer.unavailable(ctx);
    if (reason)
      statuses.push({ name: peer.name, describe: peer.describe, status: "unavailable", reason });
    else available.push(peer);
  }
  const backend = await startBackend(ctx, { endpoints: [{ name: "backend" }] });
  const upstreamPort = backend.endpoints[0]!.port;
  const rounds: Record<string, PeerRound[]> = {};
  const failures = new Map<string, string>();
  try {
    for (let r = 0; r < ctx.rounds; r++) {
      const order = available.map((_, i) => available[(i + r) % available.length]!);
      for (const peer of order) {
        if (failures.has(peer.name)) continue;
        ctx.log(`overhead: round ${r + 1}/${ctx.rounds} ${peer.name}`);
        try {
          const { result, notes: peerNotes } = await measurePeer(
            ctx,
            peer,
            upstreamPort,
            rates,
            durationMs,
            maxDurationMs,
            r,
          );
          rounds[peer.name] = [...(rounds[peer.name] ?? []), result];
          for (const n of peerNotes) if (!notes.includes(n)) notes.push(n);
        } catch (error) {
          failures.set(peer.name, (error as Error).message);
          ctx.log(`overhead: ${peer.name} failed: ${(error as Error).message}`);
        }
      }
    }
  } finally {
    await ctx.pm.stop(backend.proc);
  }
  settlePeerStatuses(statuses, available, failures, declared);

  // Summaries, with added latency against the same round's direct run.
  const direct = rounds.direct ?? [];
  const summaries: Record<string, PeerSummary> = {};
  for (const [name, list] of Object.entries(rounds)) {
    const byRate: PeerSummary["byRate"] = {};
    for (const rate of rates) {
      const key = String(rate);
      const entry: Record<string, Spread | null> = {};
      for (const p of PCTS) {
        entry[p] = spread(list.map((x) => x.rates[key]?.latencyMs[p]));
        entry[`added_${p}`] = spread(
          list.map((x) => {
            const d = direct.find((dr) => dr.round === x.round)?.rates[key]?.latencyMs[p];
            const v = x.rates[key]?.latencyMs[p];
            return d !== undefined && v !== undefined ? round(v - d, 3) : null;
          }),
        );
      }
      entry.cpuSecPer10k = spread(list.map((x) => x.rates[key]?.cpuSecPer10k));
      entry.rssMaxMb = spread(list.map((x) => x.rates[key]?.rssMaxMb));
      entry.failed = spread(list.map((x) => x.rates[key]?.failed));
      byRate[key] = entry;
    }
    const cold = (get: (c: ColdStart, x: PeerRound) => number | null | undefined) =>
      spread(list.map((x) => (x.coldStart ? get(x.coldStart, x) : null)));
    summaries[name] = {
      rssIdleMb: spread(list.map((x) => x.rssIdleMb)),
      coldStart: {
        requests: cold((c) => c.requests),
        p50: cold((c) => c.latencyMs?.p50),
        p99: cold((c) => c.latencyMs?.p99),
        p999: cold((c) => c.latencyMs?.p999),
        max: cold((c) => c.latencyMs?.max),
        failed: cold((c) => c.failed),
        // Per round: cold p99 ÷ the same fresh process's steady-state p99 at 1000 rps.
        p99VsSteady: cold((c, x) => ratio(c.latencyMs?.p99, x.rates["1000"]?.latencyMs.p99)),
      },
      byRate,
      maxRps: spread(list.map((x) => x.max?.rps)),
      cpuUsPerReqAtMax: spread(list.map((x) => x.max?.cpuUsPerReq)),
    };
  }

  const names = statuses.filter((s) => s.status === "ok").map((s) => s.name);
  const tables: Table[] = [];
  for (const rate of rates) {
    tables.push({
      title: `Latency at ${rate} rps (ms; added over direct, median (min–max) of ${ctx.rounds} round(s))`,
      columns: ["peer", "p50", "p90", "p99", "p99.9", "+p50", "+p90", "+p99", "+p99.9", "failed"],
      rows: names.map((n) => {
        const e = summaries[n]!.byRate[rate]!;
        return [
          n,
          ...PCTS.map((p) => fmtSpread(e[p], 3)),
          ...PCTS.map((p) => (n === "direct" ? "–" : fmtSpread(e[`added_${p}`], 3))),
          fmtSpread(e.failed, 0),
        ];
      }),
    });
  }
  const maxTool = Object.values(rounds)[0]?.[0]?.max;
  tables.push({
    title: "Throughput, CPU and memory",
    columns: [
      "peer",
      "max rps",
      "× nginx",
      "CPU µs/req at max",
      "CPU s/10k req @1000 rps",
      "RSS idle MB",
      "RSS @1000 rps MB",
    ],
    rows: names.map((n) => {
      const s = summaries[n]!;
      const vsNginx = ratio(s.maxRps?.median, summaries.nginx?.maxRps?.median);
      return [
        n,
        fmtSpread(s.maxRps, 0),
        vsNginx === null ? "–" : vsNginx.toFixed(2),
        n === "direct" ? "–" : fmtSpread(s.cpuUsPerReqAtMax, 1),
        n === "direct" ? "–" : fmtSpread(s.byRate["1000"]!.cpuSecPer10k, 3),
        n === "direct" ? "–" : fmtSpread(s.rssIdleMb, 1),
        n === "direct" ? "–" : fmtSpread(s.byRate["1000"]!.rssMaxMb, 1),
      ];
    }),
    note: maxTool
      ? `max rps measured with ${maxTool.tool}${maxTool.fallbackReason ? ` (${maxTool.fallbackReason})` : ""}`
      : undefined,
  });

  const med = (name: string, get: (s: PeerSummary) => Spread | null | undefined) => {
    const s = summaries[name];
    return s ? (get(s)?.median ?? null) : null;
  };
  const why = (name: string) => statusNote(statuses, name);
  const single = "mesh-single-hop";
  const pair = "mesh-sidecar-pair";
  const tuned = "mesh-single-hop-tuned";
  const targets: TargetCheck[] = [
    check(
      "sidecar pair p99 added at 1000 rps",
      "≤ 1 ms",
      med(pair, (s) => s.byRate["1000"]?.added_p99),
      (v) => v <= 1,
      (v) => `${v.toFixed(3)} ms`,
      why(pair),
    ),
    check(
      "single hop max rps vs nginx",
      "≥ 0.6×",
      ratio(
        med(single, (s) => s.maxRps),
        med("nginx", (s) => s.maxRps),
      ),
      (v) => v >= 0.6,
      (v) => `${v.toFixed(2)}×`,
      why(single) ?? why("nginx"),
    ),
    check(
      "single hop max rps vs http-proxy-3",
      "≥ 1.5×",
      ratio(
        med(single, (s) => s.maxRps),
        med("http-proxy-3", (s) => s.maxRps),
      ),
      (v) => v >= 1.5,
      (v) => `${v.toFixed(2)}×`,
      why(single),
    ),
    check(
      "single hop CPU/request vs undici pass-through (at max)",
      "≤ 1.2×",
      ratio(
        med(single, (s) => s.cpuUsPerReqAtMax),
        med("undici-stream", (s) => s.cpuUsPerReqAtMax),
      ),
      (v) => v <= 1.2,
      (v) => `${v.toFixed(2)}×`,
      why(single),
    ),
    ...[single, tuned].flatMap((name) => {
      const label = name === tuned ? "single hop (tuned V8 flags)" : "single hop (default flags)";
      return [
        check(
          `${label} RSS idle`,
          "≤ 60 MB",
          med(name, (s) => s.rssIdleMb),
          (v) => v <= 60,
          (v) => `${v.toFixed(1)} MB`,
          why(name),
        ),
        check(
          `${label} RSS at 1000 rps`,
          "≤ 90 MB",
          med(name, (s) => s.byRate["1000"]?.rssMaxMb),
          (v) => v <= 90,
          (v) => `${v.toFixed(1)} MB`,
          why(name),
        ),
      ];
    }),
  ];

  // The sidecar pairs side by side, and every peer's cold start (issue 17).
  const perRound = (get: (x: PeerRound) => number | null | undefined) => (pair: string) =>
    (rounds[pair] ?? []).map((x) => ({ round: x.round, value: get(x) }));
  const added1000 = (p: Pct) => (x: PeerRound) => {
    const d = direct.find((dr) => dr.round === x.round)?.rates["1000"]?.latencyMs[p];
    const v = x.rates["1000"]?.latencyMs[p];
    return d !== undefined && v !== undefined ? round(v - d, 3) : null;
  };
  const procSum = (get: (p: ProcRound) => number | null) => (x: PeerRound) =>
    x.procs?.length ? sum(x.procs.map(get)) : null;
  const pairRows: PairMetric[] = [
    ...(["p50", "p99", "p999"] as const).map((p) => ({
      metric: `added ${p === "p999" ? "p99.9" : p} @1000 rps (ms)`,
      digits: 3,
      values: perRound(added1000(p)),
    })),
    {
      metric: "CPU µs/request @1000 rps (both proxies)",
      digits: 1,
      values: perRound((x) => procSum((p) => p.cpuUsPerReqAt1000)(x)),
    },
    {
      metric: "CPU µs/request at max rps (both proxies)",
      digits: 1,
      values: perRound((x) => x.max?.cpuUsPerReq),
    },
    { metric: "max rps", digits: 0, values: perRound((x) => x.max?.rps) },
    { metric: "RSS idle MB (both proxies)", digits: 1, values: perRound((x) => x.rssIdleMb) },
    {
      metric: "RSS after 1000 rps MB (both proxies)",
      digits: 1,
      values: perRound(procSum((p) => p.rssAfter1000Mb)),
    },
    {
      metric: "RSS after max rps MB (both proxies)",
      digits: 1,
      values: perRound(procSum((p) => p.rssAfterMaxMb)),
    },
    {
      metric: "cold start p99 (ms)",
      digits: 3,
      values: perRound((x) => x.coldStart?.latencyMs?.p99),
    },
    {
      metric: "cold start p99 ÷ steady p99 @1000 rps",
      digits: 2,
      values: perRound((x) => ratio(x.coldStart?.latencyMs?.p99, x.rates["1000"]?.latencyMs.p99)),
    },
  ];
  const pairs = pairsTable(
    "Sidecar pairs side by side (median (min–max) of rounds; ratios per round)",
    pairRows,
    names,
    "added = pair percentile − direct percentile in the same round; CPU µs/request at 1000 rps covers the generator's own 1 s warm-up at that rate too; RSS read right after each load",
  );
  tables.push(pairs.table);
  const pairNames = [MESH_PAIR, ...MESH_DESIGN_PAIRS, ...REFERENCE_PAIRS].filter((n) =>
    names.includes(n),
  );
  tables.push({
    title: "Sidecar pairs per proxy (median (min–max) of rounds)",
    columns: [
      "pair / proxy",
      "RSS idle MB",
      "RSS after 1000 rps MB",
      "RSS after max MB",
      "CPU µs/req @1000 rps",
      "CPU µs/req at max",
    ],
    rows: pairNames.flatMap((n) =>
      (rounds[n]?.[0]?.procs ?? []).map((proc, i) => [
        `${n} / ${proc.name}`,
        ...PROC_COLUMNS.map((key) =>
          fmtSpread(spread(rounds[n]!.map((x) => x.procs?.[i]?.[key])), 1),
        ),
      ]),
    ),
  });
  tables.push(
    coldStartTable(
      `Cold start: the first ${(WARMUP.rate * warmUpMs(ctx)) / 1000} requests at ${WARMUP.rate} rps after the peer started (ms), next to its steady state`,
      "steady p99 @1000 rps",
      names.map((n) => ({
        name: n,
        cold: summaries[n]!.coldStart,
        steadyP99: summaries[n]!.byRate["1000"]!.p99,
      })),
    ),
  );
  const vs = (metric: string, ref: string) => pairs.summary.meshRatio[metric]?.[ref]?.median;
  const pairWhy = (ref?: string) => why(pair) ?? (ref ? why(ref) : undefined);
  const times = (v: number) => `${v.toFixed(2)}×`;
  const addedGap = (p: "p99" | "p999") =>
    ((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : null))(
      pairs.summary.values[`added ${p === "p999" ? "p99.9" : p} @1000 rps (ms)`]?.[pair]?.median,
      pairs.summary.values[`added ${p === "p999" ? "p99.9" : p} @1000 rps (ms)`]?.["nginx-pair"]
        ?.median,
    );
  const maxProc = (get: (p: ProcRound) => number | null) =>
    spread(
      (rounds[pair] ?? []).map((x) =>
        x.procs?.length ? Math.max(...x.procs.map((p) => get(p) ?? 0)) : null,
      ),
    )?.median;
  targets.push(
    check(
      "pair CPU/request at 1000 rps vs the minimal Node pair",
      "≤ 1.0×",
      vs("CPU µs/request @1000 rps (both proxies)", "node-pair"),
      (v) => v <= 1,
      times,
      pairWhy("node-pair"),
    ),
    check(
      "pair CPU/request at max rps vs the minimal Node pair",
      "≤ 1.0×",
      vs("CPU µs/request at max rps (both proxies)", "node-pair"),
      (v) => v <= 1,
      times,
      pairWhy("node-pair"),
    ),
    check(
      "pair CPU/request at max rps vs the nginx pair",
      "≤ 2×",
      vs("CPU µs/request at max rps (both proxies)", "nginx-pair"),
      (v) => v <= 2,
      times,
      pairWhy("nginx-pair"),
    ),
    check(
      "pair max rps vs the minimal Node pair",
      "≥ 1.0×",
      vs("max rps", "node-pair"),
      (v) => v >= 1,
      times,
      pairWhy("node-pair"),
    ),
    check(
      "pair max rps vs the nginx pair",
      "≥ 0.6×",
      vs("max rps", "nginx-pair"),
      (v) => v >= 0.6,
      times,
      pairWhy("nginx-pair"),
    ),
    check(
      "pair added p99 at 1000 rps minus the nginx pair's",
      "≤ 1 ms",
      addedGap("p99"),
      (v) => v <= 1,
      (v) => `${v.toFixed(3)} ms`,
      pairWhy("nginx-pair"),
    ),
    check(
      "pair added p99.9 at 1000 rps minus the nginx pair's",
      "≤ 5 ms",
      addedGap("p999"),
      (v) => v <= 5,
      (v) => `${v.toFixed(3)} ms`,
      pairWhy("nginx-pair"),
    ),
    check(
      "pair cold-start p99 (first requests after start) vs its steady-state p99",
      "≤ 2×",
      summaries[pair]?.coldStart.p99VsSteady?.median,
      (v) => v <= 2,
      times,
      pairWhy(),
    ),
    check(
      "pair RSS per proxy idle (the larger of the two)",
      "≤ 60 MB",
      maxProc((p) => p.rssIdleMb),
      (v) => v <= 60,
      (v) => `${v.toFixed(1)} MB`,
      pairWhy(),
    ),
    check(
      "pair RSS per proxy after 1000 rps (the larger of the two)",
      "≤ 90 MB",
      maxProc((p) => p.rssAfter1000Mb),
      (v) => v <= 90,
      (v) => `${v.toFixed(1)} MB`,
      pairWhy(),
    ),
  );

  const charts: Chart[] = [
    {
      kind: "bars",
      file: "overhead-latency-1000rps.svg",
      title: "Latency at 1000 rps by peer (ms, median of rounds)",
      unit: "ms",
      groups: names,
      series: PCTS.map((p) => ({
        name: p === "p999" ? "p99.9" : p,
        values: names.map((n) => summaries[n]!.byRate["1000"]![p]?.median ?? null),
      })),
    },
    {
      kind: "bars",
      file: "overhead-added-1000rps.svg",
      title: "Added over direct at 1000 rps (ms, median of rounds)",
      unit: "ms",
      groups: names.filter((n) => n !== "direct"),
      series: PCTS.map((p: Pct) => ({
        name: p === "p999" ? "+p99.9" : `+${p}`,
        values: names
          .filter((n) => n !== "direct")
          .map((n) => summaries[n]!.byRate["1000"]![`added_${p}`]?.median ?? null),
      })),
    },
  ];
  return {
    notes,
    peers: statuses,
    targets,
    tables,
    charts,
    data: { rates, durationMs, maxDurationMs, rounds, summaries, pairs: pairs.summary },
  };
}
