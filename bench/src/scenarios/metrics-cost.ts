/**
 * Scenario `metrics-cost`: the minimal undici `Pool.stream` pass-through proxy with
 * @mesh/metrics recording on (GoldenSignals, client interceptor + server instrumentation,
 * a Prometheus render every 10 s), with the same hooks installed but recording to
 * NOOP_SIGNALS, and with no metrics code at all. Closed-loop max rps and CPU per request.
 *
 * Paired and interleaved: every round starts a fresh process of each variant, one after the
 * other in a rotating order, and each variant is compared with the `off` run of the same
 * round; the target uses the median of those per-round ratios (min–max shown). A process's
 * own state (young-generation size chosen by V8's GC heuristics during warm-up, JIT
 * decisions) shifts its throughput by several percent for its whole life, so comparing
 * medians of a few unpaired processes mostly measures that; at least 7 rounds run unless
 * `--quick`.
 */
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK } from "../lib/net.ts";
import { cpuSeconds, rssMb } from "../lib/proc.ts";
import {
  type Chart,
  check,
  type PeerStatus,
  type ScenarioOutput,
  settlePeerStatuses,
  spreadRows,
  statusNote,
  type Table,
} from "../lib/result.ts";
import { runMaxThroughput, SRC_DIR, startBackend } from "../lib/runners.ts";
import { ratio, round, spread } from "../lib/stats.ts";
import { meshUnavailableReason } from "../load/mesh-adapters.ts";

interface Variant {
  name: string;
  describe: string;
  args: string[];
  needsMesh: boolean;
}

const VARIANTS: Variant[] = [
  {
    name: "metrics-off",
    describe: "undici Pool.stream pass-through, no metrics code",
    args: [],
    needsMesh: false,
  },
  {
    name: "metrics-noop",
    describe: "same, @mesh/metrics hooks installed with NOOP_SIGNALS",
    args: ["--metrics=noop"],
    needsMesh: true,
  },
  {
    name: "metrics-on",
    describe: "same, @mesh/metrics recording into GoldenSignals (client + server side)",
    args: ["--metrics"],
    needsMesh: true,
  },
];

/**
 * Closed-loop load each fresh process serves before it is measured (~150 k requests). With
 * 2 s (~30 k requests) the hooks measured 0.895× in a quiet run while instruction counts in
 * steady state gave +4.5 %: V8 was still optimizing the extra code inside the window.
 */
const WARMUP_MS = 10_000;

/** Runs the metrics-cost scenario. */
export async function metricsCost(ctx: BenchContext): Promise<ScenarioOutput> {
  const durationMs = ctx.quick ? 1000 : 8000;
  const rounds = ctx.quick ? ctx.rounds : Math.max(ctx.rounds, 7);
  const meshReason = await meshUnavailableReason("metrics");
  const peers: PeerStatus[] = [];
  const active = VARIANTS.filter((v) => {
    if (v.needsMesh && meshReason) {
      peers.push({ name: v.name, describe: v.describe, status: "unavailable", reason: meshReason });
      return false;
    }
    return true;
  });
  const backend = await startBackend(ctx, { endpoints: [{ name: "backend" }] });
  const runs: Record<
    string,
    Array<{
      round: number;
      rps: number;
      cpuUsPerReq: number | null;
      rssMb: number | null;
      errors: number;
    }>
  > = {};
  const failures = new Map<string, string>();
  let tool = "";
  try {
    for (let r = 0; r < rounds; r++) {
      const order = active.map((_, i) => active[(i + r) % active.length]!);
      for (const v of order) {
        if (failures.has(v.name)) continue;
        ctx.log(`metrics-cost: round ${r + 1}/${rounds} ${v.name}`);
        const port = await freePort();
        const proc = ctx.pm.start(
          v.name,
          process.execPath,
          [
            join(SRC_DIR, "peers", "undici-stream.mjs"),
            String(port),
            backend.endpoints[0]!.origin,
            ...v.args,
            "--fixed-young-gen",
          ],
          { cpus: ctx.pinning.peer },
        );
        try {
          await proc.waitForLine(/^READY /, 15_000);
          const url = `http://${LOOPBACK}:${port}/`;
          // Steady state first, as in `overhead`: a fresh process is still optimizing the
          // hooks' code for seconds at full load, and the cost is about a long-running proxy.
          await runMaxThroughput(ctx, url, ctx.quick ? 1000 : WARMUP_MS, 32);
          const c0 = cpuSeconds(proc.pid);
          const max = await runMaxThroughput(ctx, url, durationMs, 32);
          const c1 = cpuSeconds(proc.pid);
          tool = max.tool + (max.fallbackReason ? ` (${max.fallbackReason})` : "");
          runs[v.name] = [
            ...(runs[v.name] ?? []),
            {
              round: r,
              rps: max.rps,
              cpuUsPerReq:
                c0 !== null && c1 !== null && max.requests > 0
                  ? round(((c1 - c0) / max.requests) * 1e6, 2)
                  : null,
              rssMb: rssMb(proc.pid),
              errors: max.errors + max.non2xx,
            },
          ];
        } catch (error) {
          failures.set(v.name, (error as Error).message);
        } finally {
          await ctx.pm.stop(proc);
        }
      }
    }
  } finally {
    await ctx.pm.stop(backend.proc);
  }
  settlePeerStatuses(peers, active, failures, VARIANTS);
  const names = Object.keys(runs);
  // Per round: this variant against the `off` process of the same round.
  const paired = (n: string, pick: (x: (typeof runs)[string][number]) => number | null) =>
    spread(
      (runs[n] ?? []).map((x) => {
        const off = runs["metrics-off"]?.find((o) => o.round === x.round);
        return off === undefined ? null : ratio(pick(x), pick(off));
      }),
    );
  const summary = Object.fromEntries(
    names.map((n) => [
      n,
      {
        rpsVsOff: paired(n, (x) => x.rps),
        cpuVsOff: paired(n, (x) => x.cpuUsPerReq),
        rps: spread(runs[n]!.map((x) => x.rps)),
        cpuUsPerReq: spread(runs[n]!.map((x) => x.cpuUsPerReq)),
        rssMb: spread(runs[n]!.map((x) => x.rssMb)),
        errors: spread(runs[n]!.map((x) => x.errors)),
      },
    ]),
  );
  const tables: Table[] = [
    {
      title: `Max throughput of the pass-through proxy (${durationMs / 1000} s closed loop, 32 connections; median (min–max) of ${rounds} round(s), a fresh process per variant and round)`,
      columns: [
        "variant",
        "max rps",
        "rps vs off (paired)",
        "CPU µs/req",
        "CPU vs off (paired)",
        "RSS MB after",
        "errors",
      ],
      rows: spreadRows(summary, [
        ["rps", 0],
        ["rpsVsOff", 3],
        ["cpuUsPerReq", 1],
        ["cpuVsOff", 3],
        ["rssMb", 1],
        ["errors", 0],
      ]),
      note: `paired: each round's ratio to that round's metrics-off run, then median (min–max) over rounds${tool ? `; measured with ${tool}` : ""}`,
    },
  ];
  const onWhy = statusNote(peers, "metrics-on");
  const targets = [
    check(
      "throughput with metrics on vs off",
      "≥ 0.95× (≤ 5% cost), median of paired rounds",
      summary["metrics-on"]?.rpsVsOff?.median ?? null,
      (v) => v >= 0.95,
      (v) => `${v.toFixed(3)}×`,
      onWhy,
    ),
  ];
  const charts: Chart[] = [
    {
      kind: "bars",
      file: "metrics-cost.svg",
      title: "Pass-through proxy max rps with @mesh/metrics off / noop / on",
      unit: "req/s",
      groups: names,
      series: [{ name: "max rps", values: names.map((n) => summary[n]!.rps?.median ?? null) }],
    },
  ];
  return {
    notes: [
      "the proxy is bench/src/peers/undici-stream.mjs (node:http server + undici Pool.stream); only the metrics hooks differ between variants",
      `every process is measured in steady state, after ${WARMUP_MS / 1000} s of the same closed-loop load (unrecorded)`,
      "every variant runs with --semi-space-growth-factor=1 applied at start, as mesh-proxy's launcher does: left to V8's heuristics each process picks its young-generation size during warm-up (32 or 64 MB seen), which moved single runs by more than the hooks cost",
    ],
    peers,
    targets,
    tables,
    charts,
    data: { durationMs, rounds, runs, summary },
  };
}
