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
import { OVERHEAD_PEERS, type PeerDefinition } from "../peers/proxies.ts";

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

interface PeerRound {
  round: number;
  rssIdleMb: number | null;
  rates: Record<string, RateRound>;
  max: (MaxThroughput & { cpuUsPerReq: number | null }) | null;
}

interface PeerSummary {
  rssIdleMb: Spread | null;
  byRate: Record<string, Record<string, Spread | null>>;
  maxRps: Spread | null;
  cpuUsPerReqAtMax: Spread | null;
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
    const url = new URL(running.url);
    const client = { kind: "pool" as const, origin: url.origin, connections: 16 };
    // Steady state first (JIT, connection pools); not recorded.
    await warmUp(ctx, client);
    const rateResults: Record<string, RateRound> = {};
    for (const rate of rates) {
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
    const max = await runMaxThroughput(ctx, running.url, maxDurationMs, 32);
    const c1 = cpu();
    const cpuUsPerReq =
      c0 !== null && c1 !== null && max.requests > 0
        ? round(((c1 - c0) / max.requests) * 1e6, 2)
        : null;
    return {
      result: {
        round: round_,
        rssIdleMb: rssIdleMb === null ? null : round(rssIdleMb, 1),
        rates: rateResults,
        max: { ...max, cpuUsPerReq },
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
  const statuses: PeerStatus[] = [];
  const available: PeerDefinition[] = [];
  for (const peer of OVERHEAD_PEERS) {
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
  settlePeerStatuses(statuses, available, failures, OVERHEAD_PEERS);

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
    summaries[name] = {
      rssIdleMb: spread(list.map((x) => x.rssIdleMb)),
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
  const why = (name: string) => {
    const st = statuses.find((s) => s.name === name);
    return st && st.status !== "ok" ? `${name} ${st.status}: ${st.reason}` : undefined;
  };
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
    data: { rates, durationMs, maxDurationMs, rounds, summaries },
  };
}
