/**
 * Scenario `grpc`: unary and server-streaming gRPC (the wire protocol over node:http2, h2c)
 * directly to the server vs through the @mesh sidecar pair (outbound → inbound → server).
 * Unary: open-loop latency at 500 and 1000 calls/s on one HTTP/2 connection, CO-corrected.
 * Streaming: closed loop of 8 concurrent calls of 100 messages each, messages per second.
 */
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK } from "../lib/net.ts";
import { cpuSeconds, rssMb } from "../lib/proc.ts";
import {
  type Chart,
  check,
  fmt,
  fmtSpread,
  type PeerStatus,
  type ScenarioOutput,
  settlePeerStatuses,
  statusNote,
  type Table,
} from "../lib/result.ts";
import { runLoad, SRC_DIR, WARMUP, warmUp, warmUpMs } from "../lib/runners.ts";
import { ratio, round, type Spread, spread } from "../lib/stats.ts";
import type { ClosedLoopResult } from "../load/closed-loop-undici.ts";
import { failedOf, type OpenLoopResult } from "../load/open-loop.ts";
import { startMeshSidecarPair } from "../peers/mesh.ts";
import { referencePairs } from "../peers/pairs.ts";
import { meshProxyUnavailable, type PeerDefinition, type RunningPeer } from "../peers/proxies.ts";
import { coldStartTable, MESH_PAIR, type PairMetric, pairsTable } from "../report/pairs.ts";

const RATES = [500, 1000];
const STREAM_MESSAGES = 100;
const STREAM_CONCURRENCY = 8;

const PEERS: PeerDefinition[] = [
  {
    name: "direct",
    describe: "client → gRPC server (h2c)",
    unavailable: async () => null,
    start: async (_ctx, port) => ({ url: `http://${LOOPBACK}:${port}`, procs: [] }),
  },
  {
    name: "mesh-sidecar-pair",
    describe: "client → @mesh outbound → mTLS (h2) → @mesh inbound → gRPC server",
    unavailable: async () => meshProxyUnavailable(),
    start: (ctx, port) => startMeshSidecarPair(ctx, port, "h2c"),
  },
  // The reference pairs next to the @mesh pair, h2 end to end (issue 17).
  ...referencePairs("grpc"),
];

interface Round {
  round: number;
  unary: Record<string, { p50: number; p99: number; p999: number; failed: number }>;
  streamMsgsPerSec: number;
  streamFailed: number;
  cpuUsPerMsg: number | null;
  /** The first unary calls the fresh peer served (the recorded warm-up). */
  coldStart?: {
    calls: number;
    p50: number | null;
    p99: number | null;
    p999: number | null;
    failed: number;
  };
  /** Both proxies: CPU µs per unary call at 1000 calls/s (generator warm-up included). */
  cpuUsPerCallAt1000?: number | null;
  /** Summed over the proxies: idle, and right after the 1000 calls/s run. */
  rssIdleMb?: number | null;
  rssAfter1000Mb?: number | null;
}

/** Runs the grpc scenario. */
export async function grpc(ctx: BenchContext): Promise<ScenarioOutput> {
  const durationMs = ctx.quick ? 300 : 6000;
  const streamMs = ctx.quick ? 500 : 5000;
  const peers: PeerStatus[] = [];
  const active: PeerDefinition[] = [];
  for (const p of PEERS) {
    const reason = await p.unavailable(ctx);
    if (reason) peers.push({ name: p.name, describe: p.describe, status: "unavailable", reason });
    else active.push(p);
  }
  const port = await freePort();
  const server = ctx.pm.start(
    "grpc-server",
    process.execPath,
    [join(SRC_DIR, "peers", "grpc-server.ts"), String(port)],
    { cpus: ctx.pinning.peer },
  );
  await server.waitForLine(/^READY /, 15_000);
  const rounds: Record<string, Round[]> = {};
  const failures = new Map<string, string>();
  const notes: string[] = [
    "gRPC is framed by hand over node:http2 (length-prefixed messages, grpc-status trailers) on both client and server; @grpc/grpc-js is not a bench dependency",
    `unary: ${durationMs / 1000} s per rate, one HTTP/2 connection; streaming: ${STREAM_CONCURRENCY} concurrent calls of ${STREAM_MESSAGES} × 64-byte messages for ${streamMs / 1000} s`,
    `every peer is measured in its steady state: after ${(WARMUP.rate * warmUpMs(ctx)) / 1000} unary calls at ${WARMUP.rate}/s`,
  ];
  try {
    for (let r = 0; r < ctx.rounds; r++) {
      const order = active.map((_, i) => active[(i + r) % active.length]!);
      for (const peer of order) {
        if (failures.has(peer.name)) continue;
        ctx.log(`grpc: round ${r + 1}/${ctx.rounds} ${peer.name}`);
        let running: RunningPeer | null = null;
        try {
          running = await peer.start(ctx, port);
          for (const n of running.notes ?? []) if (!notes.includes(n)) notes.push(n);
          const origin = new URL(running.url).origin;
          const pids = running.procs.map((p) => p.pid);
          const cpu = () => {
            let total = 0;
            for (const pid of pids) {
              const v = cpuSeconds(pid);
              if (v === null) return null;
              total += v;
            }
            return total;
          };
          const rss = () => {
            let total = 0;
            for (const pid of pids) total += rssMb(pid) ?? Number.NaN;
            return pids.length && Number.isFinite(total) ? round(total, 1) : null;
          };
          const rssIdleMb = rss();
          const cold = await warmUp(ctx, { kind: "grpc-unary", origin });
          const unary: Round["unary"] = {};
          let cpuUsPerCallAt1000: number | null = null;
          let rssAfter1000Mb: number | null = null;
          for (const rate of RATES) {
            const u0 = pids.length ? cpu() : null;
            const res = await runLoad<OpenLoopResult & { warmupCompleted?: number }>(ctx, {
              mode: "open",
              client: { kind: "grpc-unary", origin },
              path: "/",
              rate,
              durationMs,
              warmupMs: ctx.quick ? 100 : 1000,
              drainTimeoutMs: 5000,
            });
            const u1 = pids.length ? cpu() : null;
            const calls = res.completed + (res.warmupCompleted ?? 0);
            if (rate === 1000) {
              rssAfter1000Mb = rss();
              if (u0 !== null && u1 !== null && calls > 0)
                cpuUsPerCallAt1000 = round(((u1 - u0) / calls) * 1e6, 2);
            }
            unary[rate] = {
              p50: res.latencyMs.p50,
              p99: res.latencyMs.p99,
              p999: res.latencyMs.p999,
              failed: failedOf(res),
            };
          }
          const c0 = pids.length ? cpu() : null;
          const stream = await runLoad<ClosedLoopResult>(ctx, {
            mode: "closed",
            client: { kind: "grpc-stream", origin, messages: STREAM_MESSAGES },
            path: "/",
            durationMs: streamMs,
            concurrency: STREAM_CONCURRENCY,
          });
          const c1 = pids.length ? cpu() : null;
          const msgs = stream.requests * STREAM_MESSAGES;
          rounds[peer.name] = [
            ...(rounds[peer.name] ?? []),
            {
              round: r,
              unary,
              streamMsgsPerSec: Math.round((msgs / stream.elapsedMs) * 1000),
              streamFailed: stream.errors + stream.non2xx,
              cpuUsPerMsg:
                c0 !== null && c1 !== null && msgs > 0 ? round(((c1 - c0) / msgs) * 1e6, 3) : null,
              coldStart: {
                calls: cold.completed,
                p50: cold.completed > 0 ? cold.latencyMs.p50 : null,
                p99: cold.completed > 0 ? cold.latencyMs.p99 : null,
                p999: cold.completed > 0 ? cold.latencyMs.p999 : null,
                failed: failedOf(cold),
              },
              cpuUsPerCallAt1000,
              rssIdleMb,
              rssAfter1000Mb,
            },
          ];
        } catch (error) {
          failures.set(peer.name, (error as Error).message);
        } finally {
          for (const p of running?.procs ?? []) await ctx.pm.stop(p);
        }
      }
    }
  } finally {
    await ctx.pm.stop(server);
  }
  settlePeerStatuses(peers, active, failures, PEERS);

  const names = Object.keys(rounds);
  const direct = rounds.direct ?? [];
  const summary: Record<string, Record<string, Spread | null>> = {};
  for (const n of names) {
    const list = rounds[n]!;
    const s: Record<string, Spread | null> = {
      streamMsgsPerSec: spread(list.map((x) => x.streamMsgsPerSec)),
      streamFailed: spread(list.map((x) => x.streamFailed)),
      cpuUsPerMsg: spread(list.map((x) => x.cpuUsPerMsg)),
      coldStart_p99: spread(list.map((x) => x.coldStart?.p99)),
      coldStart_p99VsSteady: spread(list.map((x) => ratio(x.coldStart?.p99, x.unary[1000]?.p99))),
      cpuUsPerCallAt1000: spread(list.map((x) => x.cpuUsPerCallAt1000)),
      rssIdleMb: spread(list.map((x) => x.rssIdleMb)),
      rssAfter1000Mb: spread(list.map((x) => x.rssAfter1000Mb)),
    };
    for (const rate of RATES) {
      for (const p of ["p50", "p99", "p999"] as const) {
        s[`unary${rate}_${p}`] = spread(list.map((x) => x.unary[rate]?.[p]));
        s[`unary${rate}_added_${p}`] = spread(
          list.map((x) => {
            const d = direct.find((dr) => dr.round === x.round)?.unary[rate]?.[p];
            const v = x.unary[rate]?.[p];
            return d !== undefined && v !== undefined ? round(v - d, 3) : null;
          }),
        );
      }
      s[`unary${rate}_failed`] = spread(list.map((x) => x.unary[rate]?.failed));
    }
    summary[n] = s;
  }
  const tables: Table[] = [
    ...RATES.map((rate) => ({
      title: `Unary at ${rate} calls/s (ms; median (min–max) of ${ctx.rounds} round(s))`,
      columns: ["peer", "p50", "p99", "p99.9", "+p50", "+p99", "+p99.9", "failed"],
      rows: names.map((n) => {
        const s = summary[n]!;
        const added = (p: string) =>
          n === "direct" ? "–" : fmtSpread(s[`unary${rate}_added_${p}`], 3);
        return [
          n,
          fmtSpread(s[`unary${rate}_p50`], 3),
          fmtSpread(s[`unary${rate}_p99`], 3),
          fmtSpread(s[`unary${rate}_p999`], 3),
          added("p50"),
          added("p99"),
          added("p999"),
          fmtSpread(s[`unary${rate}_failed`], 0),
        ];
      }),
    })),
    {
      title: "Server streaming",
      columns: ["peer", "messages/s", "vs direct", "proxy CPU µs/message", "failed calls"],
      rows: names.map((n) => [
        n,
        fmtSpread(summary[n]!.streamMsgsPerSec, 0),
        fmt(
          ratio(summary[n]!.streamMsgsPerSec?.median, summary.direct?.streamMsgsPerSec?.median),
          2,
        ),
        n === "direct" ? "–" : fmtSpread(summary[n]!.cpuUsPerMsg, 2),
        fmtSpread(summary[n]!.streamFailed, 0),
      ]),
    },
  ];
  // The sidecar pairs side by side, with every peer's cold start (issue 17).
  const perRound = (get: (x: Round) => number | null | undefined) => (pair: string) =>
    (rounds[pair] ?? []).map((x) => ({ round: x.round, value: get(x) }));
  const added = (p: "p50" | "p99" | "p999") => (x: Round) => {
    const d = direct.find((dr) => dr.round === x.round)?.unary[1000]?.[p];
    const v = x.unary[1000]?.[p];
    return d !== undefined && v !== undefined ? round(v - d, 3) : null;
  };
  const pairRows: PairMetric[] = [
    ...(["p50", "p99", "p999"] as const).map((p) => ({
      metric: `unary added ${p === "p999" ? "p99.9" : p} @1000 calls/s (ms)`,
      digits: 3,
      values: perRound(added(p)),
    })),
    {
      metric: "CPU µs/unary call @1000 calls/s (both proxies)",
      digits: 1,
      values: perRound((x) => x.cpuUsPerCallAt1000),
    },
    { metric: "streaming messages/s", digits: 0, values: perRound((x) => x.streamMsgsPerSec) },
    {
      metric: "CPU µs/streamed message (both proxies)",
      digits: 2,
      values: perRound((x) => x.cpuUsPerMsg),
    },
    { metric: "RSS idle MB (both proxies)", digits: 1, values: perRound((x) => x.rssIdleMb) },
    {
      metric: "RSS after 1000 calls/s MB (both proxies)",
      digits: 1,
      values: perRound((x) => x.rssAfter1000Mb),
    },
    { metric: "cold start p99 (ms)", digits: 3, values: perRound((x) => x.coldStart?.p99) },
    {
      metric: "cold start p99 ÷ steady p99 @1000 calls/s",
      digits: 2,
      values: perRound((x) => ratio(x.coldStart?.p99, x.unary[1000]?.p99)),
    },
  ];
  const okNames = names.filter((n) => !failures.has(n));
  const pairs = pairsTable(
    "Sidecar pairs side by side, gRPC (median (min–max) of rounds; ratios per round)",
    pairRows,
    okNames,
    "added = pair percentile − direct percentile in the same round; CPU per unary call covers the generator's own 1 s warm-up at that rate too",
  );
  tables.push(pairs.table);
  tables.push(
    coldStartTable(
      `Cold start: the first ${(WARMUP.rate * warmUpMs(ctx)) / 1000} unary calls at ${WARMUP.rate}/s after the peer started (ms), next to its steady state`,
      "steady p99 @1000 calls/s",
      names.map((n) => {
        const cold = (get: (x: NonNullable<Round["coldStart"]>) => number | null) =>
          spread(rounds[n]!.map((x) => (x.coldStart ? get(x.coldStart) : null)));
        return {
          name: n,
          cold: {
            p50: cold((x) => x.p50),
            p99: summary[n]!.coldStart_p99 ?? null,
            p999: cold((x) => x.p999),
            failed: cold((x) => x.failed),
            p99VsSteady: summary[n]!.coldStart_p99VsSteady ?? null,
          },
          steadyP99: summary[n]!.unary1000_p99,
        };
      }),
    ),
  );
  const pairStatus = peers.find((p) => p.name === "mesh-sidecar-pair");
  const why =
    pairStatus && pairStatus.status !== "ok"
      ? `mesh-sidecar-pair ${pairStatus.status}: ${pairStatus.reason}`
      : undefined;
  const statusWhy = (name: string) => statusNote(peers, name);
  const targets = [
    check(
      "sidecar pair gRPC unary p99 added at 1000 calls/s (the HTTP target)",
      "≤ 1 ms",
      summary["mesh-sidecar-pair"]?.unary1000_added_p99?.median,
      (v) => v <= 1,
      (v) => `${v.toFixed(3)} ms`,
      why,
    ),
    {
      name: "sidecar pair streaming throughput vs direct",
      target: "reported (no numeric target)",
      value: ((v) => (v === null ? null : `${v.toFixed(2)}×`))(
        ratio(
          summary["mesh-sidecar-pair"]?.streamMsgsPerSec?.median,
          summary.direct?.streamMsgsPerSec?.median,
        ),
      ),
      pass: null,
      note: why ?? "informational",
    },
    check(
      "sidecar pair gRPC unary added p99 at 1000 calls/s minus the nginx pair's",
      "≤ 1 ms",
      ((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : null))(
        pairs.summary.values["unary added p99 @1000 calls/s (ms)"]?.[MESH_PAIR]?.median,
        pairs.summary.values["unary added p99 @1000 calls/s (ms)"]?.["nginx-pair"]?.median,
      ),
      (v) => v <= 1,
      (v) => `${v.toFixed(3)} ms`,
      why ?? statusWhy("nginx-pair"),
    ),
    check(
      "sidecar pair gRPC CPU/unary call at 1000 calls/s vs the minimal Node pair",
      "≤ 1.0×",
      pairs.summary.meshRatio["CPU µs/unary call @1000 calls/s (both proxies)"]?.["node-pair"]
        ?.median,
      (v) => v <= 1,
      (v) => `${v.toFixed(2)}×`,
      why ?? statusWhy("node-pair"),
    ),
  ];
  const charts: Chart[] = [
    {
      kind: "bars",
      file: "grpc-unary-1000.svg",
      title: "gRPC unary latency at 1000 calls/s (ms, median of rounds)",
      unit: "ms",
      groups: names,
      series: (["p50", "p99", "p999"] as const).map((p) => ({
        name: p === "p999" ? "p99.9" : p,
        values: names.map((n) => summary[n]![`unary1000_${p}`]?.median ?? null),
      })),
    },
  ];
  return {
    notes,
    peers,
    targets,
    tables,
    charts,
    data: { rates: RATES, durationMs, streamMs, rounds, summary, pairs: pairs.summary },
  };
}
