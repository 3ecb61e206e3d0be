/**
 * Scenario `rate-limit`: two meshed clients share an app — a noisy one offering far more
 * than its share and a polite one — through real `mesh-proxy` processes: each client has
 * its own outbound proxy with its own SPIFFE identity, both reach the app's inbound proxy
 * over mTLS. The app (`peers/concurrency-app.mjs`) serves 250 rps at best; beyond that its
 * latency grows for everyone. Cases, each with fresh proxies and a fresh app:
 *
 * - polite alone, no limit: the polite client's reference latency;
 * - no limit: the noisy client takes the app down for both;
 * - inbound limits: `inbound.rateLimit` with `total`, `identity` (per client) and an
 *   `override` for the polite client (a trusted frontend);
 * - inbound total only: one limit for everyone, which the noisy client mostly takes;
 * - outbound fail-fast / queue: `services[].rateLimit` on the noisy client's own proxy.
 *
 * Reported per client: offered and admitted rps (steady state) against the limit that
 * applies to it, 429s and how many carried `retry-after`, other failures, p50/p99; and the
 * app's own view (requests in flight, p99 in the app).
 */
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import {
  check,
  fmt,
  fmtSpread,
  type PeerStatus,
  type ScenarioOutput,
  type Table,
} from "../lib/result.ts";
import { runFailureReason, runLoad, SRC_DIR } from "../lib/runners.ts";
import { round, type Spread, spread } from "../lib/stats.ts";
import { meshUnavailableReason } from "../load/mesh-adapters.ts";
import { failedOf, type OpenLoopResult } from "../load/open-loop.ts";
import {
  type IdentityFiles,
  issueIdentities,
  PAIR_TRUST_DOMAIN,
  pairInboundSection,
  runDir,
  startProxy,
  writeConfig,
} from "../peers/mesh.ts";

const NOISY_ID = `spiffe://${PAIR_TRUST_DOMAIN}/ns/bench/sa/noisy`;
const POLITE_ID = `spiffe://${PAIR_TRUST_DOMAIN}/ns/bench/sa/frontend`;
const APP_ID = `spiffe://${PAIR_TRUST_DOMAIN}/ns/bench/sa/app`;

/** The app: 10 in flight at 100 ms each, processor-shared beyond: 100 rps at best. */
const APP_CAPACITY = 10;
const APP_BASE_MS = 100;
const APP_CAPACITY_RPS = (APP_CAPACITY * 1000) / APP_BASE_MS;

const CLIENTS = {
  noisy: { id: NOISY_ID, rate: 200, connections: 256 },
  polite: { id: POLITE_ID, rate: 25, connections: 16 },
} as const;
type ClientName = keyof typeof CLIENTS;

/** The limits of the limited cases. */
const TOTAL_RPS = 80;
/** Below the polite client's rate: without its override it would be cut too. */
const IDENTITY_RPS = 20;
const OVERRIDE_RPS = 50;
const OUTBOUND_RPS = 50;
/** Steady state: admitted rps is counted after the first second (the burst). */
const STEADY_FROM_MS = 1_000;
/** Accuracy target: admitted rps within ±10 % of the limit. */
const ACCURACY = 0.1;

interface Case {
  name: string;
  /** Run in `--quick` mode too (the smoke test keeps to the two limited cases). */
  quick?: boolean;
  describe: string;
  clients: ClientName[];
  inbound?: object;
  /** `services[].rateLimit` of the noisy client's outbound proxy. */
  noisyOutbound?: object;
  /** The limit that applies to each client (rps), and whether it binds at the offered rate. */
  limits: Partial<Record<ClientName, number>>;
  /** A limit shared by every client (the total), checked on their sum. */
  sharedLimit?: number;
}

const CASES: Case[] = [
  {
    name: "polite alone",
    describe: "the polite client only, no limit (its reference latency)",
    clients: ["polite"],
    limits: {},
  },
  {
    name: "no limit",
    describe: "both clients, no limit: 225 rps offered to a 100 rps app",
    clients: ["noisy", "polite"],
    limits: {},
  },
  {
    name: "inbound limits",
    quick: true,
    describe: `inbound.rateLimit: total ${TOTAL_RPS}/s, identity ${IDENTITY_RPS}/s per client, override ${OVERRIDE_RPS}/s for the polite client's identity`,
    clients: ["noisy", "polite"],
    inbound: {
      total: { requestsPerSecond: TOTAL_RPS },
      identity: { requestsPerSecond: IDENTITY_RPS },
      overrides: [{ requestsPerSecond: OVERRIDE_RPS, identities: [POLITE_ID] }],
    },
    limits: { noisy: IDENTITY_RPS, polite: OVERRIDE_RPS },
  },
  {
    name: "inbound total only",
    describe: `inbound.rateLimit: total ${TOTAL_RPS}/s only (shared by everyone)`,
    clients: ["noisy", "polite"],
    inbound: { total: { requestsPerSecond: TOTAL_RPS } },
    limits: {},
    sharedLimit: TOTAL_RPS,
  },
  {
    name: "outbound fail-fast",
    quick: true,
    describe: `the noisy client's own proxy: services[].rateLimit ${OUTBOUND_RPS}/s, mode fail-fast`,
    clients: ["noisy", "polite"],
    noisyOutbound: { requestsPerSecond: OUTBOUND_RPS },
    limits: { noisy: OUTBOUND_RPS },
  },
  {
    name: "outbound queue",
    describe: `the noisy client's own proxy: services[].rateLimit ${OUTBOUND_RPS}/s, mode queue, maxWait 1s, maxQueue 100`,
    clients: ["noisy", "polite"],
    noisyOutbound: {
      requestsPerSecond: OUTBOUND_RPS,
      mode: "queue",
      maxWait: "1s",
      maxQueue: 100,
    },
    limits: { noisy: OUTBOUND_RPS },
  },
];

interface ClientRun {
  offeredRps: number;
  /** Requests of this client that reached the app per second, after the first second. */
  admittedRps: number;
  rejected429: number;
  withRetryAfter: number;
  /** Non-2xx other than 429, errors, and requests unfinished at the end. */
  otherFailed: number;
  successShare: number;
  p50Ms: number;
  p99Ms: number;
}

interface AppStats {
  completed: number;
  maxInFlight: number;
  p99Ms: number | null;
}

interface CaseRun {
  clients: Partial<Record<ClientName, ClientRun>>;
  app: AppStats;
}

function clientRun(
  r: OpenLoopResult & { headerCounts?: Record<string, number> },
  admittedRps: number,
): ClientRun {
  const rejected429 = r.statusCounts["429"] ?? 0;
  return {
    offeredRps: r.rate,
    admittedRps,
    rejected429,
    withRetryAfter: r.headerCounts?.["429"] ?? 0,
    otherFailed: failedOf(r) - rejected429,
    successShare: round(r.ok / r.offered, 4),
    p50Ms: r.latencyMs.p50,
    p99Ms: r.latencyMs.p99,
  };
}

/** Runs the rate-limit scenario. */
export async function rateLimit(ctx: BenchContext): Promise<ScenarioOutput> {
  const durationMs = ctx.quick ? 2_000 : 10_000;
  const warmupMs = ctx.quick ? 300 : 2_000;
  const peers: PeerStatus[] = [];
  const reason =
    (await meshUnavailableReason("proxy")) ?? (await meshUnavailableReason("tls-identity"));
  const dir = runDir(ctx, "rate-limit");
  const ids = reason
    ? undefined
    : await issueIdentities(dir, { noisy: NOISY_ID, polite: POLITE_ID, app: APP_ID });
  const runs: Record<string, CaseRun[]> = {};
  const failures = new Map<string, string>();
  const cases = CASES.filter((c) => !ctx.quick || c.quick);

  const startApp = async (): Promise<{ proc: ManagedProcess; port: number }> => {
    const proc = ctx.pm.start(
      "concurrency-app",
      process.execPath,
      [
        join(SRC_DIR, "peers", "concurrency-app.mjs"),
        "0",
        String(APP_CAPACITY),
        String(APP_BASE_MS),
      ],
      { cpus: ctx.pinning.peer },
    );
    const line = await proc.waitForLine(/^READY /, 15_000);
    return { proc, port: Number(line.slice("READY ".length).trim()) };
  };

  const outboundConfig = (
    name: ClientName,
    files: IdentityFiles,
    outPort: number,
    inPort: number,
    limit: object | undefined,
  ) => ({
    proxyId: `bench-${name}`,
    admin: { listen: `${LOOPBACK}:0` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: CLIENTS[name].id, files },
    outbound: {
      listen: `${LOOPBACK}:${outPort}`,
      unknownAuthority: "deny",
      requireIdentity: true,
      services: [
        {
          name: "app",
          authorities: [`${LOOPBACK}:${outPort}`, "app"],
          discovery: { static: [{ address: `${LOOPBACK}:${inPort}`, identity: APP_ID }] },
          ...(limit && { rateLimit: limit }),
        },
      ],
    },
  });

  const runOnce = async (c: Case, files: NonNullable<typeof ids>): Promise<CaseRun> => {
    const procs: ManagedProcess[] = [];
    try {
      const app = await startApp();
      procs.push(app.proc);
      const inPort = await freePort();
      const outPorts = { noisy: await freePort(), polite: await freePort() };
      const caseDir = runDir(ctx, "rate-limit-case");
      const inbound = {
        proxyId: "bench-app-inbound",
        admin: { listen: `${LOOPBACK}:0` },
        log: { level: "warn", accessLog: false },
        identity: { trustDomain: PAIR_TRUST_DOMAIN, id: APP_ID, files: files.app },
        inbound: {
          ...pairInboundSection(inPort, app.port, "http1"),
          ...(c.inbound && { rateLimit: c.inbound }),
        },
      };
      const started = await Promise.all([
        startProxy(ctx, "mesh-inbound", writeConfig(ctx, "inbound", inbound, caseDir), inPort),
        ...c.clients.map((name) =>
          startProxy(
            ctx,
            `mesh-outbound-${name}`,
            writeConfig(
              ctx,
              `outbound-${name}`,
              outboundConfig(
                name,
                files[name],
                outPorts[name],
                inPort,
                name === "noisy" ? c.noisyOutbound : undefined,
              ),
              caseDir,
            ),
            outPorts[name],
          ),
        ),
      ]);
      procs.push(...started);
      // No start time: each client measures right after its warm-up, so the limiters never
      // idle (an idle second would refill a burst of one second's worth at the start).
      const results = await Promise.all(
        c.clients.map((name) =>
          runLoad<OpenLoopResult & { headerCounts?: Record<string, number> }>(ctx, {
            mode: "open",
            client: {
              kind: "pool",
              origin: `http://${LOOPBACK}:${outPorts[name]}`,
              connections: CLIENTS[name].connections,
              countHeader: "retry-after",
            },
            path: "/",
            rate: CLIENTS[name].rate,
            durationMs,
            warmupMs,
            drainTimeoutMs: 10_000,
          }),
        ),
      );
      const stats = async (since: number, until = Number.POSITIVE_INFINITY) => {
        const q = `since=${since}${Number.isFinite(until) ? `&until=${until}` : ""}`;
        const res = await fetch(`http://${LOOPBACK}:${app.port}/__stats?${q}`, {
          signal: AbortSignal.timeout(10_000),
        });
        return (await res.json()) as AppStats & { byClient: Record<string, number> };
      };
      const startAt = Math.min(...results.map((r) => r.startedAtEpochMs));
      const appStats = await stats(startAt);
      // Admitted = what reached the app from this client (its verified ID), in its steady window.
      const steadyS = (durationMs - STEADY_FROM_MS) / 1000;
      const admitted = async (name: ClientName, r: OpenLoopResult) => {
        const from = r.startedAtEpochMs;
        const steady = await stats(from + STEADY_FROM_MS, from + durationMs);
        return round((steady.byClient[CLIENTS[name].id] ?? 0) / steadyS, 1);
      };
      const clients: Partial<Record<ClientName, ClientRun>> = {};
      for (const [i, name] of c.clients.entries())
        clients[name] = clientRun(results[i]!, await admitted(name, results[i]!));
      return {
        clients,
        app: {
          completed: appStats.completed,
          maxInFlight: appStats.maxInFlight,
          p99Ms: appStats.p99Ms === null ? null : round(appStats.p99Ms, 1),
        },
      };
    } finally {
      for (const p of procs.reverse()) await ctx.pm.stop(p);
    }
  };

  if (ids) {
    for (let round_ = 0; round_ < ctx.rounds; round_++) {
      for (const c of cases) {
        if (failures.has(c.name)) continue;
        ctx.log(`rate-limit: round ${round_ + 1}/${ctx.rounds} ${c.name}`);
        try {
          runs[c.name] = [...(runs[c.name] ?? []), await runOnce(c, ids)];
        } catch (error) {
          failures.set(c.name, runFailureReason(error));
        }
      }
    }
  }
  for (const c of cases) {
    const why = reason ?? failures.get(c.name);
    peers.push(
      why === undefined
        ? { name: c.name, describe: c.describe, status: "ok" }
        : {
            name: c.name,
            describe: c.describe,
            status: reason ? "unavailable" : "failed",
            reason: why,
          },
    );
  }

  type ClientSummary = Record<keyof ClientRun | "accuracy", Spread | null>;
  const summary: Record<
    string,
    {
      clients: Partial<Record<ClientName, ClientSummary>>;
      app: Record<keyof AppStats, Spread | null>;
      totalAdmittedRps: Spread | null;
    }
  > = {};
  for (const c of CASES) {
    const r = runs[c.name];
    if (!r) continue;
    const clients: Partial<Record<ClientName, ClientSummary>> = {};
    for (const name of c.clients) {
      const xs = r.map((x) => x.clients[name]!);
      const limit = c.limits[name];
      clients[name] = {
        offeredRps: spread(xs.map((x) => x.offeredRps)),
        admittedRps: spread(xs.map((x) => x.admittedRps)),
        // Only where the limit binds: a client offering less than its limit is not cut.
        accuracy:
          limit === undefined || CLIENTS[name].rate <= limit
            ? null
            : spread(xs.map((x) => round(x.admittedRps / limit - 1, 4))),
        rejected429: spread(xs.map((x) => x.rejected429)),
        withRetryAfter: spread(xs.map((x) => x.withRetryAfter)),
        otherFailed: spread(xs.map((x) => x.otherFailed)),
        successShare: spread(xs.map((x) => x.successShare)),
        p50Ms: spread(xs.map((x) => x.p50Ms)),
        p99Ms: spread(xs.map((x) => x.p99Ms)),
      };
    }
    summary[c.name] = {
      clients,
      app: {
        completed: spread(r.map((x) => x.app.completed)),
        maxInFlight: spread(r.map((x) => x.app.maxInFlight)),
        p99Ms: spread(r.map((x) => x.app.p99Ms)),
      },
      totalAdmittedRps: spread(
        r.map((x) => Object.values(x.clients).reduce((n, cl) => n + cl.admittedRps, 0)),
      ),
    };
  }

  const pct = (s: Spread | null | undefined, digits = 1, sign = false) => {
    if (!s) return "–";
    const f = (v: number) => `${sign && v > 0 ? "+" : ""}${(v * 100).toFixed(digits)}`;
    return s.n <= 1 || s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
  };
  const tables: Table[] = [
    {
      title: `Per client: noisy offers ${CLIENTS.noisy.rate} rps, polite ${CLIENTS.polite.rate} rps, to an app that serves ${APP_CAPACITY_RPS} rps at best; ${durationMs / 1000} s measured, admitted rps = requests that reached the app per second after the first second, counted by the app per verified client ID (median (min–max) of ${ctx.rounds} round(s))`,
      columns: [
        "case",
        "client",
        "offered rps",
        "admitted rps",
        "limit rps",
        "admitted vs limit %",
        "429s",
        "429s with retry-after",
        "other failures",
        "success %",
        "p50 ms",
        "p99 ms",
      ],
      rows: CASES.flatMap((c) =>
        c.clients
          .filter(() => summary[c.name] !== undefined)
          .map((name) => {
            const s = summary[c.name]!.clients[name]!;
            const limit = c.limits[name];
            return [
              c.name,
              name,
              fmtSpread(s.offeredRps, 0),
              fmtSpread(s.admittedRps, 1),
              limit === undefined
                ? c.sharedLimit
                  ? `${c.sharedLimit} shared`
                  : "none"
                : String(limit),
              pct(s.accuracy, 1, true),
              fmtSpread(s.rejected429, 0),
              fmtSpread(s.withRetryAfter, 0),
              fmtSpread(s.otherFailed, 0),
              pct(s.successShare, 2),
              fmtSpread(s.p50Ms, 1),
              fmtSpread(s.p99Ms, 1),
            ];
          }),
      ),
    },
    {
      title: "The app's view (requests that arrived in the measured window)",
      columns: [
        "case",
        "admitted rps (both clients)",
        "app completed",
        "max in flight",
        "p99 in app ms",
      ],
      rows: CASES.filter((c) => summary[c.name] !== undefined).map((c) => {
        const s = summary[c.name]!;
        return [
          c.name,
          fmtSpread(s.totalAdmittedRps, 1),
          fmtSpread(s.app.completed, 0),
          fmtSpread(s.app.maxInFlight, 0),
          fmtSpread(s.app.p99Ms, 1),
        ];
      }),
    },
  ];

  const why = (name: string) => {
    const p = peers.find((x) => x.name === name);
    if (!p) return `${name}: not run in --quick mode`;
    return p.status !== "ok" ? `${name} ${p.status}: ${p.reason}` : undefined;
  };
  const client = (c: string, name: ClientName) => summary[c]?.clients[name];
  const accuracyCheck = (c: string, name: ClientName, what: string) =>
    check(
      `${c}: ${name} client admitted vs its ${what}`,
      `within ±${ACCURACY * 100} %`,
      client(c, name)?.accuracy?.median,
      (v) => Math.abs(v) <= ACCURACY,
      (v) =>
        `${fmt(client(c, name)?.admittedRps?.median, 1)} rps (${v > 0 ? "+" : ""}${fmt(v * 100, 1)} %)`,
      why(c),
    );
  const refP99 = client("polite alone", "polite")?.p99Ms?.median;
  const total = summary["inbound total only"]?.totalAdmittedRps?.median;
  const targets = [
    accuracyCheck("inbound limits", "noisy", `per-identity limit (${IDENTITY_RPS}/s)`),
    check(
      "inbound total only: both clients admitted vs the total limit",
      `within ±${ACCURACY * 100} % of ${TOTAL_RPS}/s`,
      total === undefined ? undefined : total / TOTAL_RPS - 1,
      (v) => Math.abs(v) <= ACCURACY,
      (v) => `${fmt(total, 1)} rps (${v > 0 ? "+" : ""}${fmt(v * 100, 1)} %)`,
      why("inbound total only"),
    ),
    accuracyCheck("outbound fail-fast", "noisy", `outbound limit (${OUTBOUND_RPS}/s)`),
    accuracyCheck("outbound queue", "noisy", `outbound limit (${OUTBOUND_RPS}/s)`),
    check(
      "inbound limits: every 429 the noisy client got carries retry-after",
      "all",
      client("inbound limits", "noisy")?.rejected429?.median === undefined
        ? undefined
        : (client("inbound limits", "noisy")!.withRetryAfter?.median ?? 0) /
            Math.max(1, client("inbound limits", "noisy")!.rejected429!.median),
      (v) => v === 1 && (client("inbound limits", "noisy")?.rejected429?.median ?? 0) > 0,
      (v) =>
        `${fmt(client("inbound limits", "noisy")?.withRetryAfter?.median, 0)} of ${fmt(client("inbound limits", "noisy")?.rejected429?.median, 0)} (${fmt(v * 100, 1)} %)`,
      why("inbound limits"),
    ),
    check(
      "inbound limits: the polite client's success (its override admits it all)",
      "100 %",
      client("inbound limits", "polite")?.successShare?.median,
      (v) => v === 1,
      (v) => `${fmt(v * 100, 2)} %`,
      why("inbound limits"),
    ),
    check(
      "inbound limits: the polite client's p99 vs alone",
      "≤ 2× its p99 alone (unaffected)",
      refP99 === undefined
        ? undefined
        : (client("inbound limits", "polite")?.p99Ms?.median ?? Number.NaN) / refP99,
      (v) => v <= 2,
      (v) =>
        `${fmt(client("inbound limits", "polite")?.p99Ms?.median, 1)} ms vs ${fmt(refP99, 1)} ms (${fmt(v, 2)}×)`,
      why("inbound limits") ?? why("polite alone"),
    ),
    check(
      "no limit: the polite client's p99 vs alone (the baseline: the noisy client takes the app down)",
      "reported (≫ 2× expected)",
      refP99 === undefined
        ? undefined
        : (client("no limit", "polite")?.p99Ms?.median ?? Number.NaN) / refP99,
      (v) => v > 2,
      (v) => `${fmt(client("no limit", "polite")?.p99Ms?.median, 1)} ms (${fmt(v, 1)}×)`,
      why("no limit") ?? why("polite alone"),
    ),
  ];
  return {
    notes: [
      `each client: an undici Pool (noisy ${CLIENTS.noisy.connections} connections, polite ${CLIENTS.polite.connections}) → its own mesh-proxy outbound with its own X.509-SVID (${NOISY_ID}, ${POLITE_ID}) → mTLS → the app's mesh-proxy inbound (${APP_ID}, policy all-authenticated; the rate limit is keyed by the verified client ID) → the app over HTTP/1.1; fresh proxies and app per case`,
      `the app (peers/concurrency-app.mjs) takes ${APP_BASE_MS} ms per request up to ${APP_CAPACITY} in flight and is processor-shared beyond (${APP_CAPACITY_RPS} rps at best, timers, no CPU): overloaded, every request waits behind the backlog`,
      `open loop, CO-corrected, ${warmupMs / 1000} s warm-up at the same rates, then ${durationMs / 1000} s measured; 'admitted rps' = requests that reached the app per second from 1 s after the start to the end, counted by the app per mesh-client-id (the limiter's burst of one second's worth is spent by then; counting where the limit applies is immune to queueing on the client's side); 'other failures' are non-2xx other than 429, errors, and requests still unanswered 10 s after the last send`,
      "outbound queue: an admitted request may wait up to maxWait (1 s) for its slot, which its latency shows; the rest are refused at once (429, queue full or wait too long)",
    ],
    peers,
    targets,
    tables,
    charts: [],
    data: {
      appCapacityRps: APP_CAPACITY_RPS,
      clients: CLIENTS,
      limits: {
        total: TOTAL_RPS,
        identity: IDENTITY_RPS,
        override: OVERRIDE_RPS,
        outbound: OUTBOUND_RPS,
      },
      durationMs,
      cases: CASES,
      runs,
      summary,
    },
  };
}
