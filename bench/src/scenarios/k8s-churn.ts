/**
 * Scenario `k8s-churn` (issue 18, item 4): a real `mesh-proxy` whose only discovery is
 * `discovery.kubernetes` follows a Service of 1000 endpoints (100 EndpointSlices × 10) served
 * by the fake Kubernetes API server (`test/fake-kube-apiserver.ts`, imported, not copied),
 * while an open-loop load of 1000 rps goes through it and a rolling update replaces every
 * endpoint at 10 slice updates per second: per slice, the new pods' slice appears ready,
 * the old slice turns `serving+terminating`, and a few slices later it is deleted and its
 * pods exit. Reports failed requests (target 0), p50/p99 during the rollout against a
 * steady-state window before it, update-to-effect latency (the fake applies an update →
 * the proxy's admin `/endpoints` shows it), the proxy's RSS and CPU per request.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  endpointSlice,
  type FakeKubeApiserver,
  service,
  startFakeKubeApiserver,
} from "../../../test/fake-kube-apiserver.ts";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK, waitForPort } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import { cpuSeconds, rssMb, sampleRss } from "../lib/proc.ts";
import type { Chart, PeerStatus, ScenarioOutput, Table } from "../lib/result.ts";
import { check, fmt, fmtSpread } from "../lib/result.ts";
import { runLoad, SRC_DIR, warmUp } from "../lib/runners.ts";
import { round, type Spread, spread } from "../lib/stats.ts";
import type { ClientSpec } from "../load/clients.ts";
import { REPO_ROOT } from "../load/mesh-adapters.ts";
import { failedOf, type OpenLoopResult } from "../load/open-loop.ts";
import { runDir, startProxy, writeConfig } from "../peers/mesh.ts";

/** Endpoints per EndpointSlice (each slice's endpoints share one port, on 127.0.0.1–.10). */
export const PER_SLICE = 10;
const NAMESPACE = "bench";
const SERVICE = "churn";
const TOKEN = "bench-churn-token";
/** Old slices stay `serving+terminating` for this many slices of the rollout before deletion. */
const TERMINATING_LAG = 5;
/**
 * The add/terminate updates of every n-th slice are sampled for update-to-effect latency,
 * one at a time (a sample due while another is polling is skipped): each poll of
 * `/endpoints` serialises every endpoint, which the proxy pays for.
 */
const SAMPLE_EVERY = 4;
/** How often a sample polls the proxy's `/endpoints` (the resolution of the measure). */
const POLL_MS = 10;

/** The sizes of one run. */
export interface ChurnSize {
  endpoints: number;
  rate: number;
  updateRate: number;
  steadyMs: number;
}

/** Defaults (issue 18: 1000 endpoints, 1000 rps, 10 updates/s), smaller with `--quick`. */
export function churnSize(ctx: Pick<BenchContext, "quick" | "params">): ChurnSize {
  const p = ctx.params ?? {};
  const endpoints = p.endpoints ?? (ctx.quick ? 50 : 1000);
  if (endpoints % PER_SLICE !== 0)
    throw new RangeError(
      `--endpoints: expected a multiple of ${PER_SLICE} (endpoints per EndpointSlice), got ${endpoints}`,
    );
  return {
    endpoints,
    rate: p.rate ?? (ctx.quick ? 200 : 1000),
    updateRate: p.updateRate ?? 10,
    steadyMs: (p.durationS ?? (ctx.quick ? 2 : 10)) * 1000,
  };
}

/** One EndpointSlice update of the rollout. */
export interface ChurnUpdate {
  /** `add`: the new pods' slice, ready; `terminate`: the old slice, serving+terminating; `delete`: the old slice gone. */
  kind: "add" | "terminate" | "delete";
  slice: number;
}

/**
 * The rolling update as the API server sees it, in order: for each slice `i`, the new slice
 * `i` appears ready, the old slice `i` turns terminating, and the old slice `i - lag` is
 * deleted (so each old slice drains through `lag` slices of the rollout); then the last
 * deletions. `3 × slices` updates in all.
 */
export function rolloutSchedule(slices: number, lag = TERMINATING_LAG): ChurnUpdate[] {
  const out: ChurnUpdate[] = [];
  for (let i = 0; i < slices; i++) {
    out.push({ kind: "add", slice: i }, { kind: "terminate", slice: i });
    if (i >= lag) out.push({ kind: "delete", slice: i - lag });
  }
  for (let i = Math.max(0, slices - lag); i < slices; i++) out.push({ kind: "delete", slice: i });
  return out;
}

interface AdminEndpoint {
  address: string;
  state: string;
}

/** The proxy's admin `/endpoints`, flattened. */
async function adminEndpoints(admin: string): Promise<AdminEndpoint[]> {
  const res = await fetch(`http://${admin}/endpoints`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`proxy admin /endpoints: HTTP ${res.status}`);
  const body = (await res.json()) as { backends: { endpoints: AdminEndpoint[] }[] }[];
  return body.flatMap((s) => s.backends.flatMap((b) => b.endpoints));
}

/** Polls `/endpoints` until `ok` holds; resolves with the ms from `since` to that answer. */
async function effectAfter(
  admin: string,
  since: number,
  ok: (eps: AdminEndpoint[]) => boolean,
  timeoutMs: number,
): Promise<number> {
  const deadline = since + timeoutMs;
  while (performance.now() < deadline) {
    if (ok(await adminEndpoints(admin))) return performance.now() - since;
    await sleep(POLL_MS);
  }
  throw new Error(`proxy /endpoints did not reflect the update within ${timeoutMs} ms`);
}

/** One load window through the proxy. */
interface WindowMeasure {
  seconds: number;
  load: OpenLoopResult;
  cpuUsPerReq: number | null;
  rssMaxMb: number | null;
}

const WINDOWS = ["steady", "rollout"] as const;

interface Round {
  steady: WindowMeasure;
  rollout: WindowMeasure;
  rolloutMs: number;
  updates: number;
  /** Update-to-effect latencies, ms, by kind. */
  effectMs: { add: number[]; terminate: number[] };
  /** Sampled updates whose effect was not seen in time. */
  effectMissed: number;
  /** Updates due for a sample while the previous sample was still polling. */
  effectSkipped: number;
  rssIdleMb: number | null;
  /** Requests the old pods received after they exited (0 unless the proxy kept using them). */
  requestsAfterExit: number;
  /** After the rollout: new endpoints ready in `/endpoints`, old endpoints still listed. */
  finalReady: number;
  finalOldListed: number;
}

interface ChurnBackend {
  proc: ManagedProcess;
  ports: number[];
  close(group: number): Promise<void>;
  stats(): Promise<{ requests: number; afterClose: number }>;
}

async function startChurnBackend(ctx: BenchContext, groups: number): Promise<ChurnBackend> {
  const proc = ctx.pm.start(
    "churn-backend",
    process.execPath,
    [join(SRC_DIR, "peers", "churn-backend.mjs"), JSON.stringify({ groups, perGroup: PER_SLICE })],
    { cpus: ctx.pinning.peer },
  );
  const line = await proc.waitForLine(/^READY /, 60_000);
  const ready = JSON.parse(line.slice("READY ".length)) as { control: number; ports: number[] };
  const control = `http://${LOOPBACK}:${ready.control}`;
  return {
    proc,
    ports: ready.ports,
    async close(group) {
      const res = await fetch(`${control}/close`, {
        method: "POST",
        body: JSON.stringify({ group }),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status !== 204) throw new Error(`churn-backend close ${group}: HTTP ${res.status}`);
    },
    async stats() {
      const res = await fetch(`${control}/stats`, { signal: AbortSignal.timeout(10_000) });
      return (await res.json()) as { requests: number; afterClose: number };
    },
  };
}

/** One round: a fresh fake API server, backend and proxy; steady window; rollout. */
async function runRound(ctx: BenchContext, size: ChurnSize): Promise<Round> {
  const slices = size.endpoints / PER_SLICE;
  const api: FakeKubeApiserver = await startFakeKubeApiserver({ tokens: [TOKEN] });
  // Groups 0..slices-1 are the old pods, slices..2·slices-1 the new ones.
  const backend = await startChurnBackend(ctx, 2 * slices);
  let proxy: ManagedProcess | undefined;
  try {
    const dir = runDir(ctx, "k8s-churn");
    const kubeconfig = join(dir, "kubeconfig");
    api.writeKubeconfig(kubeconfig, TOKEN, NAMESPACE);
    api.apply(
      service({
        name: SERVICE,
        namespace: NAMESPACE,
        selector: { app: SERVICE },
        ports: [{ name: "http", port: 80, targetPort: "http", appProtocol: "http" }],
      }),
    );
    const generation = (gen: "v1" | "v2") => (gen === "v1" ? 0 : slices);
    const addresses = (gen: "v1" | "v2", s: number) => {
      const port = backend.ports[generation(gen) + s]!;
      return Array.from({ length: PER_SLICE }, (_, k) => `127.0.0.${k + 1}:${port}`);
    };
    const slice = (
      gen: "v1" | "v2",
      s: number,
      conditions: { ready: boolean; serving?: boolean; terminating?: boolean },
    ) =>
      endpointSlice({
        namespace: NAMESPACE,
        service: SERVICE,
        name: `${SERVICE}-${gen}-${s}`,
        ports: [{ name: "http", port: backend.ports[generation(gen) + s]!, appProtocol: "http" }],
        endpoints: Array.from({ length: PER_SLICE }, (_, k) => ({
          ip: `127.0.0.${k + 1}`,
          pod: `${SERVICE}-${gen}-${s}-${k}`,
          ...conditions,
        })),
      });
    for (let s = 0; s < slices; s++) api.apply(slice("v1", s, { ready: true }));

    const port = await freePort();
    const adminPort = await freePort();
    const admin = `${LOOPBACK}:${adminPort}`;
    const config = {
      proxyId: "bench-k8s-churn",
      admin: { listen: admin },
      log: { level: "warn", accessLog: false },
      outbound: {
        listen: `${LOOPBACK}:${port}`,
        unknownAuthority: "deny",
        services: [
          {
            name: SERVICE,
            authorities: [`${LOOPBACK}:${port}`, SERVICE],
            discovery: { kubernetes: { service: SERVICE, namespace: NAMESPACE, port: 80 } },
          },
        ],
      },
    };
    proxy = await startProxy(
      ctx,
      "mesh-outbound",
      writeConfig(ctx, "k8s-churn", config, dir),
      port,
      [],
      { KUBECONFIG: kubeconfig },
    );
    const proxyPid = proxy.pid;
    await waitForPort(adminPort, 15_000, () => ctx.pm.livePids().includes(proxyPid));
    // The proxy lists the Service at start, but its balancer (what /endpoints shows) comes
    // with the first request: send one, then wait until /endpoints lists every slice.
    const first = await fetch(`http://${LOOPBACK}:${port}/`, {
      signal: AbortSignal.timeout(30_000),
    });
    if (first.status !== 200)
      throw new Error(
        `first request through the proxy: HTTP ${first.status} ${(await first.text()).slice(0, 200)}; proxy stderr: ${proxy.stderr().slice(-600)}`,
      );
    await first.arrayBuffer().catch(() => undefined);
    await effectAfter(
      admin,
      performance.now(),
      (eps) => eps.filter((e) => e.state === "ready").length === size.endpoints,
      30_000,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message} (waiting for ${size.endpoints} ready endpoints from the fake API server); proxy stderr: ${proxy?.stderr().slice(-600)}`,
      );
    });
    const rssIdleMb = rssMb(proxyPid);
    const client: ClientSpec = {
      kind: "pool",
      origin: `http://${LOOPBACK}:${port}`,
      connections: 16,
    };
    await warmUp(ctx, client);

    // Steady state: the same load, no updates.
    let cpu0 = cpuSeconds(proxyPid);
    let rss = sampleRss(proxyPid);
    const steady = await runLoad<OpenLoopResult>(ctx, {
      mode: "open",
      client,
      path: "/",
      rate: size.rate,
      durationMs: size.steadyMs,
    });
    const rssSteadyMaxMb = rss.stop();
    let cpu1 = cpuSeconds(proxyPid);
    const cpuUsPerReqSteady =
      cpu0 !== null && cpu1 !== null && steady.completed > 0
        ? ((cpu1 - cpu0) * 1e6) / steady.completed
        : null;

    // The rollout, under the same load: it starts when the load does.
    const schedule = rolloutSchedule(slices);
    const intervalMs = 1000 / size.updateRate;
    const rolloutMs = schedule.length * intervalMs;
    const tailMs = 1000;
    const startAt = Date.now() + 1500;
    cpu0 = cpuSeconds(proxyPid);
    rss = sampleRss(proxyPid);
    const load = runLoad<OpenLoopResult>(ctx, {
      mode: "open",
      client,
      path: "/",
      rate: size.rate,
      durationMs: rolloutMs + tailMs,
      startAtEpochMs: startAt,
    });
    // Awaited after the schedule; a worker that fails early must not be an unhandled rejection.
    load.catch(() => undefined);
    const effectMs = { add: [] as number[], terminate: [] as number[] };
    let effectMissed = 0;
    let effectSkipped = 0;
    const samples: Promise<void>[] = [];
    let sampling = false;
    await sleep(Math.max(0, startAt - Date.now()));
    const t0 = performance.now();
    for (let i = 0; i < schedule.length; i++) {
      const wait = t0 + i * intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
      const u = schedule[i]!;
      const at = performance.now();
      if (u.kind === "add") api.apply(slice("v2", u.slice, { ready: true }));
      else if (u.kind === "terminate")
        api.apply(slice("v1", u.slice, { ready: false, serving: true, terminating: true }));
      else {
        api.remove("EndpointSlice", NAMESPACE, `${SERVICE}-v1-${u.slice}`);
        // Kubelet stops the pods once they are terminated: their listeners close.
        await backend.close(generation("v1") + u.slice);
      }
      // A deletion of an already-terminating slice changes nothing the proxy shows; adds and
      // terminations are sampled.
      if (u.kind !== "delete" && u.slice % SAMPLE_EVERY === 0 && sampling) effectSkipped++;
      else if (u.kind !== "delete" && u.slice % SAMPLE_EVERY === 0) {
        const wanted = new Set(addresses(u.kind === "add" ? "v2" : "v1", u.slice));
        const ok =
          u.kind === "add"
            ? (eps: AdminEndpoint[]) =>
                eps.filter((e) => wanted.has(e.address) && e.state === "ready").length ===
                wanted.size
            : (eps: AdminEndpoint[]) =>
                !eps.some((e) => wanted.has(e.address) && e.state === "ready");
        const kind = u.kind;
        sampling = true;
        samples.push(
          effectAfter(admin, at, ok, 10_000)
            .then(
              (ms) => void effectMs[kind].push(round(ms, 2)),
              () => void effectMissed++,
            )
            .finally(() => {
              sampling = false;
            }),
        );
      }
    }
    await Promise.all(samples);
    const rollout = await load;
    const rssRolloutMaxMb = rss.stop();
    cpu1 = cpuSeconds(proxyPid);
    const cpuUsPerReqRollout =
      cpu0 !== null && cpu1 !== null && rollout.completed > 0
        ? ((cpu1 - cpu0) * 1e6) / rollout.completed
        : null;
    const final = await adminEndpoints(admin);
    const newAddresses = new Set(
      Array.from({ length: slices }, (_, s) => addresses("v2", s)).flat(),
    );
    const stats = await backend.stats();
    return {
      steady: {
        seconds: size.steadyMs / 1000,
        load: steady,
        cpuUsPerReq: cpuUsPerReqSteady,
        rssMaxMb: rssSteadyMaxMb,
      },
      rollout: {
        seconds: (rolloutMs + tailMs) / 1000,
        load: rollout,
        cpuUsPerReq: cpuUsPerReqRollout,
        rssMaxMb: rssRolloutMaxMb,
      },
      rolloutMs,
      updates: schedule.length,
      effectMs,
      effectMissed,
      effectSkipped,
      rssIdleMb,
      requestsAfterExit: stats.afterClose,
      finalReady: final.filter((e) => newAddresses.has(e.address) && e.state === "ready").length,
      finalOldListed: final.filter((e) => !newAddresses.has(e.address)).length,
    };
  } finally {
    if (proxy) await ctx.pm.stop(proxy);
    await ctx.pm.stop(backend.proc);
    await api.close();
  }
}

/** Percentiles of a list of samples (nearest rank), or null when empty. */
function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Count, p50, p99 and max of update-to-effect samples, ms. */
function effectSummary(xs: number[]) {
  return {
    n: xs.length,
    p50: percentile(xs, 50),
    p99: percentile(xs, 99),
    max: percentile(xs, 100),
  };
}

/** Runs the k8s-churn scenario. */
export async function k8sChurn(ctx: BenchContext): Promise<ScenarioOutput> {
  const size = churnSize(ctx);
  const slices = size.endpoints / PER_SLICE;
  const peer = {
    name: "mesh-proxy",
    describe: `mesh-proxy (outbound, HTTP/1.1 to the pods) with discovery.kubernetes on a Service of ${size.endpoints} endpoints in ${slices} EndpointSlices from the fake API server`,
  };
  const cli = join(REPO_ROOT, "packages", "proxy", "dist", "cli.js");
  if (!existsSync(cli)) {
    const reason = `${cli} is missing: build the packages first (npx turbo run build)`;
    return {
      notes: [],
      peers: [{ ...peer, status: "unavailable", reason }],
      targets: [
        check("failed requests across the rollout", "0", null, () => false, String, reason),
      ],
      tables: [],
      charts: [],
      data: { size },
    };
  }
  const rounds: Round[] = [];
  const peers: PeerStatus[] = [];
  let failure: string | undefined;
  for (let r = 0; r < ctx.rounds; r++) {
    ctx.log(`k8s-churn: round ${r + 1}/${ctx.rounds} (${size.endpoints} endpoints)`);
    try {
      rounds.push(await runRound(ctx, size));
    } catch (error) {
      failure = (error as Error).message;
      break;
    }
  }
  peers.push(failure ? { ...peer, status: "failed", reason: failure } : { ...peer, status: "ok" });

  const s = (f: (r: Round) => number | null | undefined): Spread | null => spread(rounds.map(f));
  const allEffects = (kind: "add" | "terminate") => rounds.flatMap((r) => r.effectMs[kind]);
  const windowSummary = (w: (typeof WINDOWS)[number]) => ({
    failed: s((r) => failedOf(r[w].load)),
    p50: s((r) => r[w].load.latencyMs.p50),
    p99: s((r) => r[w].load.latencyMs.p99),
    cpuUsPerReq: s((r) => r[w].cpuUsPerReq),
    rssMaxMb: s((r) => r[w].rssMaxMb),
  });
  const summary = {
    steady: windowSummary("steady"),
    rollout: windowSummary("rollout"),
    rssIdleMb: s((r) => r.rssIdleMb),
    effectAddMs: effectSummary(allEffects("add")),
    effectTerminateMs: effectSummary(allEffects("terminate")),
    effectMissed: rounds.reduce((a, r) => a + r.effectMissed, 0),
    effectSkipped: rounds.reduce((a, r) => a + r.effectSkipped, 0),
    requestsAfterExit: s((r) => r.requestsAfterExit),
  };
  const rolloutS = (3 * slices) / size.updateRate;
  const label = { steady: "steady state (before)", rollout: "rollout" };
  const tables: Table[] = [
    {
      title: `Rolling update of ${size.endpoints} endpoints (${slices} slices × ${PER_SLICE}) at ${size.updateRate} slice updates/s under ${size.rate} rps (median (min–max) of ${rounds.length} round(s))`,
      columns: [
        "window",
        "seconds",
        "offered",
        "failed",
        "p50 ms",
        "p99 ms",
        "proxy CPU µs/req",
        "proxy RSS max MB",
      ],
      rows: WINDOWS.map((w) => [
        label[w],
        fmt(rounds[0]?.[w].seconds, 1),
        String(rounds[0]?.[w].load.offered ?? "–"),
        fmtSpread(summary[w].failed, 0),
        fmtSpread(summary[w].p50),
        fmtSpread(summary[w].p99),
        fmtSpread(summary[w].cpuUsPerReq, 1),
        fmtSpread(summary[w].rssMaxMb, 1),
      ]),
      note: `proxy RSS idle (all ${size.endpoints} endpoints known, before load): ${fmtSpread(summary.rssIdleMb, 1)} MB; requests reaching old pods after they exited: ${fmtSpread(summary.requestsAfterExit, 0)}`,
    },
    {
      title: `Update-to-effect latency: the fake API server applies an EndpointSlice update → the proxy's /endpoints shows it (every ${SAMPLE_EVERY}th slice, polled every ${POLL_MS} ms)`,
      columns: ["update", "samples", "p50 ms", "p99 ms", "max ms"],
      rows: [
        ["new slice ready → its endpoints ready", summary.effectAddMs] as const,
        ["old slice terminating → its endpoints not ready", summary.effectTerminateMs] as const,
      ].map(([name, e]) => [name, String(e.n), fmt(e.p50, 1), fmt(e.p99, 1), fmt(e.max, 1)]),
      note: `${summary.effectMissed} sampled update(s) not seen within 10 s; ${summary.effectSkipped} skipped because the previous sample was still polling`,
    },
  ];
  const why = failure ? `mesh-proxy failed: ${failure}` : undefined;
  const p99Ratio =
    summary.rollout.p99 && summary.steady.p99
      ? summary.rollout.p99.median / summary.steady.p99.median
      : null;
  const targets = [
    check(
      "failed requests across the rollout",
      "0",
      summary.rollout.failed?.max,
      (v) => v === 0,
      (v) => fmt(v, 0),
      why,
    ),
    check(
      "every new endpoint ready, no old one listed after the rollout",
      `${size.endpoints} ready, 0 old`,
      rounds.length
        ? Math.min(...rounds.map((r) => (r.finalOldListed === 0 ? r.finalReady : -1)))
        : null,
      (v) => v === size.endpoints,
      (v) => (v < 0 ? "old endpoints still listed" : `${v} ready, 0 old`),
      why,
    ),
  ];
  const charts: Chart[] = rounds.length
    ? [
        {
          kind: "bars",
          file: "k8s-churn-latency.svg",
          title: `Latency through the proxy, steady vs rolling update (${size.endpoints} endpoints, ${size.rate} rps)`,
          unit: "ms",
          groups: ["p50", "p90", "p99", "p99.9"],
          series: WINDOWS.map((w) => {
            const l = rounds[0]![w].load.latencyMs;
            return { name: w, values: [l.p50, l.p90, l.p99, l.p999] };
          }),
        },
      ]
    : [];
  return {
    notes: [
      `all endpoints are on loopback: one backend process listens on ${2 * slices} ports, each on 127.0.0.1–127.0.0.${PER_SLICE} (an EndpointSlice's ports are shared by its endpoints and the proxy keys endpoints by address, so the ${PER_SLICE} endpoints of a slice need ${PER_SLICE} addresses; one process instead of ${2 * size.endpoints} leaves the 2 cores to the proxy under test)`,
      `rollout: per slice, the new pods' slice appears ready, the old slice turns serving+terminating, and ${TERMINATING_LAG} slices later the old slice is deleted and its pods' listeners close (${3 * slices} updates, ${fmt(rolloutS, 1)} s at ${size.updateRate}/s); the load runs 1 s past the last update`,
      `steady and rollout windows are two open-loop runs of the same load (CO-corrected) by fresh load-generator processes, after a warm-up; about 1.5 s without load separates them`,
      "update-to-effect is an upper bound: from the apply at the fake API server (in the harness process) to the first /endpoints answer that shows it; the polling itself costs the proxy CPU, included in the rollout's CPU per request",
      "plaintext HTTP/1.1 to the pods (no identity): mTLS per endpoint and the Pod watch are not part of this measure",
    ],
    peers,
    targets,
    tables,
    charts,
    data: { size, perSlice: PER_SLICE, terminatingLag: TERMINATING_LAG, p99Ratio, summary, rounds },
  };
}
