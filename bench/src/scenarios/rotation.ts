/**
 * Scenario `rotation`: certificate rotation under load. A real @mesh/tls-identity issuer
 * hands out SVIDs that live 10 s (3 s with `--quick`); a sidecar pair of real `mesh-proxy`
 * processes (outbound → mTLS HTTP/2 → inbound → app) gets its certificates from it with the
 * CSR flow and renews them at 70 % of their lifetime, while open-loop HTTP/1.1 and gRPC
 * unary load crosses the pair for 60 s (8 s). Every renewal swaps the certificate used by new
 * handshakes while the HTTP/2 connection between the proxies carries on; the scenario counts
 * the rotations each proxy reports on `/metrics` and every request that failed.
 */
import { writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK, waitForReady } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import {
  type Chart,
  check,
  fmt,
  type PeerStatus,
  type ScenarioOutput,
  type Table,
  type TargetCheck,
} from "../lib/result.ts";
import { runLoad } from "../lib/runners.ts";
import { grpcReply, readGrpcMessages } from "../load/grpc-wire.ts";
import { importMesh } from "../load/mesh-adapters.ts";
import { failedOf, type OpenLoopResult } from "../load/open-loop.ts";
import {
  pairInboundSection,
  pairOutboundSection,
  runDir,
  startProxy,
  writeConfig,
} from "../peers/mesh.ts";
import { meshProxyUnavailable } from "../peers/proxies.ts";

const TRUST_DOMAIN = "rotation.bench.mesh.local";
const OUTBOUND_ID = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/client`;
const INBOUND_ID = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/server`;
/** HTTP/1.1 requests per second through the pair. */
const HTTP_RATE = 100;
/**
 * gRPC unary calls per second. Modest on purpose: at ≥ 500 calls/s gRPC through the mTLS
 * pair queues for a reason unrelated to rotation (tracked separately), and this scenario
 * measures rotation.
 */
const GRPC_RATE = 50;
/** Renew at this share of the remaining lifetime (the proxy's default, Linkerd's 70 %). */
const RENEW_FRACTION = 0.7;
const PEER = "mesh-sidecar-pair";
const PEER_DESCRIBE =
  "client → @mesh outbound → mTLS (h2) → @mesh inbound → app, SVIDs from a @mesh/tls-identity issuer";

/** The knobs of one run. */
interface RotationPlan {
  lifetimeMs: number;
  durationMs: number;
  /** Rotations each proxy must show during the load. */
  minRotations: number;
}

/** The plan for full and quick mode. */
export function rotationPlan(quick: boolean): RotationPlan {
  return quick
    ? { lifetimeMs: 3_000, durationMs: 8_000, minRotations: 2 }
    : { lifetimeMs: 10_000, durationMs: 60_000, minRotations: 5 };
}

/**
 * One app port serving both HTTP/1.1 (`ok`) and h2c gRPC (`/bench.Echo/Unary` echoes), as
 * the inbound's `appProtocol: auto` needs: the first bytes pick the server (the HTTP/2
 * preface starts with `PRI `). Runs in the harness process; it only answers.
 */
async function startDualApp(): Promise<{ port: number; close(): Promise<void> }> {
  const h1 = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
      res.end("ok");
    });
  });
  const h2 = http2.createServer();
  h2.on("stream", (stream, headers) => {
    readGrpcMessages(stream).then(
      (messages) => {
        const known = headers[":path"] === "/bench.Echo/Unary";
        if (known) grpcReply(stream, [messages[0] ?? Buffer.alloc(0)]);
        else grpcReply(stream, [], 12); // UNIMPLEMENTED
      },
      () => stream.close(),
    );
  });
  const sockets = new Set<net.Socket>();
  const front = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.once("data", (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (first.subarray(0, 4).toString("latin1") === "PRI ") h2.emit("connection", socket);
      else {
        h1.emit("connection", socket);
        socket.resume();
      }
    });
  });
  await new Promise<void>((resolve) => front.listen(0, LOOPBACK, resolve));
  return {
    port: (front.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => front.close(() => resolve()));
    },
  };
}

/** Sum of a counter's samples (any labels) in Prometheus text. */
function counter(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

/** One proxy of the pair: its process and admin address. */
interface PairProxy {
  role: "outbound" | "inbound";
  id: string;
  proc: ManagedProcess;
  admin: string;
}

interface IdentityCounters {
  refreshes: number;
  failures: number;
}

async function identityCounters(p: PairProxy): Promise<IdentityCounters> {
  const res = await fetch(`http://${p.admin}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  return {
    refreshes: counter(text, "identity_cert_refresh_total"),
    failures: counter(text, "identity_cert_refresh_failures_total"),
  };
}

/** Resolves once `/ready` answers 200 (the proxy holds an SVID); rejects after `timeoutMs`. */
async function waitReady(p: PairProxy, alive: () => boolean, timeoutMs = 15_000): Promise<void> {
  await waitForReady(p.admin, timeoutMs, alive).catch((error: Error) => {
    throw new Error(`${p.role} proxy: ${error.message}; stderr: ${p.proc.stderr().slice(-600)}`);
  });
}

/** Load result reduced to what the report shows. */
type LoadSummary = Pick<
  OpenLoopResult,
  "rate" | "ok" | "statusCounts" | "errorCodes" | "latencyMs"
> & { describe: string; sent: number; failed: number };

function summarise(r: OpenLoopResult & { describe: string }): LoadSummary {
  return {
    describe: r.describe,
    rate: r.rate,
    sent: r.offered,
    ok: r.ok,
    failed: failedOf(r),
    statusCounts: r.statusCounts,
    errorCodes: r.errorCodes,
    latencyMs: r.latencyMs,
  };
}

/** Runs the rotation scenario. */
export async function rotation(ctx: BenchContext): Promise<ScenarioOutput> {
  const plan = rotationPlan(ctx.quick);
  const renewEveryMs = Math.round(plan.lifetimeMs * RENEW_FRACTION);
  const notes = [
    `SVID lifetime ${plan.lifetimeMs / 1000} s, renewed at ${RENEW_FRACTION * 100} % of it (every ≈ ${renewEveryMs / 1000} s) by each proxy with a fresh key and CSR; ${plan.durationMs / 1000} s of open-loop load: ${HTTP_RATE} HTTP/1.1 requests/s (undici Pool, 4 connections) and ${GRPC_RATE} gRPC unary calls/s (one HTTP/2 connection) at the same time, CO-corrected latency, no warm-up (every request counts)`,
    "the issuer (@mesh/tls-identity createIssuer, plain HTTP on loopback, static tokens) and the app (HTTP/1.1 + h2c gRPC on one port, picked by the first bytes) run in the harness process; the two proxies are real mesh-proxy processes",
    "one soak per run, whatever --rounds says: it is a correctness check over time, not a latency comparison",
    `rates are modest (${HTTP_RATE} + ${GRPC_RATE}/s) on purpose: the soak checks that rotation costs no request, the overhead and grpc scenarios measure latency`,
  ];
  const unavailable = meshProxyUnavailable();
  if (unavailable) {
    return {
      notes,
      peers: [{ name: PEER, describe: PEER_DESCRIBE, status: "unavailable", reason: unavailable }],
      targets: targetsFor(plan, null, `${PEER} unavailable: ${unavailable}`),
      tables: [],
      charts: [],
      data: { plan },
    };
  }

  const mod = await importMesh("tls-identity");
  type Ca = object;
  const createTrustAnchor = mod.createTrustAnchor as (o: { trustDomain: string }) => {
    createAuthority(): Ca;
  };
  const createIssuer = mod.createIssuer as (o: {
    ca: Ca;
    authenticator: unknown;
    svidTtlMs: number;
  }) => { listen(port: number, host: string): Promise<string>; close(): Promise<void> };
  const staticTokenAuthenticator = mod.staticTokenAuthenticator as (
    t: Record<string, string>,
  ) => unknown;

  const dir = runDir(ctx, "rotation");
  const tokens = { [`token-${OUTBOUND_ID}`]: OUTBOUND_ID, [`token-${INBOUND_ID}`]: INBOUND_ID };
  const tokenFile = (id: string) => {
    const file = join(dir, `${id.split("/").pop()}.token`);
    writeFileSync(file, `token-${id}`, { mode: 0o600 });
    return file;
  };
  const issuer = createIssuer({
    ca: createTrustAnchor({ trustDomain: TRUST_DOMAIN }).createAuthority(),
    authenticator: staticTokenAuthenticator(tokens),
    svidTtlMs: plan.lifetimeMs,
  });
  const issuerUrl = await issuer.listen(0, LOOPBACK);
  const app = await startDualApp();

  const peers: PeerStatus[] = [];
  const proxies: PairProxy[] = [];
  let failure: string | undefined;
  let http1: LoadSummary | undefined;
  let grpc: LoadSummary | undefined;
  const before: Record<string, IdentityCounters> = {};
  const after: Record<string, IdentityCounters> = {};
  const timeline: Record<string, Array<[number, number]>> = { outbound: [], inbound: [] };
  try {
    const identity = (id: string) => ({
      trustDomain: TRUST_DOMAIN,
      id,
      issuer: { url: issuerUrl, tokenFile: tokenFile(id), bundleRefresh: 0 },
      renewal: {
        fraction: RENEW_FRACTION,
        min: "500ms",
        retryInitial: "200ms",
        retryMax: "1s",
      },
    });
    const inPort = await freePort();
    const outPort = await freePort();
    const start = async (
      role: PairProxy["role"],
      id: string,
      port: number,
      section: object,
    ): Promise<PairProxy> => {
      const adminAddr = `${LOOPBACK}:${await freePort()}`;
      const config = {
        proxyId: `bench-rotation-${role}`,
        admin: { listen: adminAddr },
        log: { level: "warn", accessLog: false },
        identity: identity(id),
        ...section,
      };
      const file = writeConfig(ctx, role, config, dir);
      const proc = await startProxy(ctx, `mesh-${role}`, file, port);
      const p: PairProxy = { role, id, proc, admin: adminAddr };
      proxies.push(p);
      await waitReady(p, () => ctx.pm.livePids().includes(proc.pid));
      return p;
    };
    await start("inbound", INBOUND_ID, inPort, {
      inbound: pairInboundSection(inPort, app.port, "auto"),
    });
    await start("outbound", OUTBOUND_ID, outPort, {
      outbound: pairOutboundSection(outPort, inPort, INBOUND_ID),
    });
    for (const p of proxies) before[p.role] = await identityCounters(p);

    ctx.log(`rotation: ${plan.durationMs / 1000} s of HTTP/1.1 + gRPC load through the pair`);
    const origin = `http://${LOOPBACK}:${outPort}`;
    const t0 = Date.now();
    // Sample the refresh counters once a second for the chart (the result does not depend
    // on the sampling: the totals are read again after the load).
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const p of proxies) {
          const c = await identityCounters(p).catch(() => undefined);
          if (c)
            timeline[p.role]!.push([
              Math.round((Date.now() - t0) / 100) / 10,
              c.refreshes - before[p.role]!.refreshes,
            ]);
        }
        await new Promise((r) => setTimeout(r, 1_000));
      }
    })();
    try {
      const [h, g] = await Promise.all([
        runLoad<OpenLoopResult>(ctx, {
          mode: "open",
          client: { kind: "pool", origin, connections: 4 },
          path: "/",
          rate: HTTP_RATE,
          durationMs: plan.durationMs,
          warmupMs: 0,
          drainTimeoutMs: 5_000,
        }),
        runLoad<OpenLoopResult>(ctx, {
          mode: "open",
          client: { kind: "grpc-unary", origin },
          path: "/",
          rate: GRPC_RATE,
          durationMs: plan.durationMs,
          warmupMs: 0,
          drainTimeoutMs: 5_000,
        }),
      ]);
      http1 = summarise(h);
      grpc = summarise(g);
    } finally {
      sampling = false;
      await sampler;
    }
    for (const p of proxies) after[p.role] = await identityCounters(p);
  } catch (error) {
    failure = (error as Error).message;
  } finally {
    for (const p of proxies) await ctx.pm.stop(p.proc);
    await app.close();
    await issuer.close();
  }
  peers.push(
    failure === undefined
      ? { name: PEER, describe: PEER_DESCRIBE, status: "ok" }
      : { name: PEER, describe: PEER_DESCRIBE, status: "failed", reason: failure },
  );

  const rotations: Record<string, number | null> = {};
  const refreshFailures: Record<string, number | null> = {};
  for (const role of ["outbound", "inbound"]) {
    const b = before[role];
    const a = after[role];
    rotations[role] = a && b ? a.refreshes - b.refreshes : null;
    refreshFailures[role] = a && b ? a.failures - b.failures : null;
  }
  const measured =
    http1 && grpc
      ? {
          httpFailed: http1.failed,
          grpcFailed: grpc.failed,
          minRotations: Math.min(rotations.outbound ?? 0, rotations.inbound ?? 0),
        }
      : null;
  const why = failure === undefined ? undefined : `${PEER} failed: ${failure}`;
  const lat = (s: LoadSummary | undefined, p: "p50" | "p99" | "p999") =>
    s ? fmt(s.latencyMs[p], 3) : "–";
  const tables: Table[] = [
    {
      title: `Load through the pair during ${plan.durationMs / 1000} s of rotation (ms, CO-corrected)`,
      columns: ["traffic", "rate/s", "sent", "ok", "failed", "p50", "p99", "p99.9"],
      rows: (
        [
          ["HTTP/1.1", http1],
          ["gRPC unary", grpc],
        ] as const
      ).map(([name, s]) => [
        name,
        String(s?.rate ?? "–"),
        String(s?.sent ?? "–"),
        String(s?.ok ?? "–"),
        String(s?.failed ?? "–"),
        lat(s, "p50"),
        lat(s, "p99"),
        lat(s, "p999"),
      ]),
    },
    {
      title: "Certificate rotations during the load (from each proxy's /metrics)",
      columns: ["proxy", "SPIFFE ID", "rotations", "refresh failures", "lifetime s"],
      rows: proxies
        .slice()
        .sort((a, b) => a.role.localeCompare(b.role))
        .map((p) => [
          p.role,
          p.id,
          String(rotations[p.role] ?? "–"),
          String(refreshFailures[p.role] ?? "–"),
          String(plan.lifetimeMs / 1000),
        ]),
      note: "rotations = increase of identity_cert_refresh_total between the start and the end of the load (the first certificate, obtained before the load, is not counted)",
    },
  ];
  const charts: Chart[] = measured
    ? [
        {
          kind: "lines",
          file: "rotation-refreshes.svg",
          title: `Certificate rotations under load (${plan.lifetimeMs / 1000} s lifetime)`,
          xLabel: "seconds since load start",
          yLabel: "rotations so far",
          series: (["outbound", "inbound"] as const).map((role) => ({
            name: role,
            points: timeline[role] ?? [],
          })),
        },
      ]
    : [];
  return {
    notes,
    peers,
    targets: targetsFor(plan, measured, why),
    tables,
    charts,
    data: {
      plan: { ...plan, renewFraction: RENEW_FRACTION, httpRate: HTTP_RATE, grpcRate: GRPC_RATE },
      http: http1 ?? null,
      grpc: grpc ?? null,
      rotations,
      refreshFailures,
      timeline,
    },
  };
}

function targetsFor(
  plan: RotationPlan,
  m: { httpFailed: number; grpcFailed: number; minRotations: number } | null,
  why: string | undefined,
): TargetCheck[] {
  const count = (v: number) => String(v);
  return [
    check(
      "failed HTTP/1.1 requests across rotations",
      "0",
      m?.httpFailed,
      (v) => v === 0,
      count,
      why,
    ),
    check("failed gRPC calls across rotations", "0", m?.grpcFailed, (v) => v === 0, count, why),
    check(
      "certificate rotations on each proxy during the load",
      `≥ ${plan.minRotations}`,
      m?.minRotations,
      (v) => v >= plan.minRotations,
      (v) => `${v} (fewest of the two)`,
      why,
    ),
  ];
}
