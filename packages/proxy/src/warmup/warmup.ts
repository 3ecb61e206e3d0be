import { type ChildProcess, spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { runUnobserved } from "@mesh/core";
import { serverTlsOptions } from "@mesh/tls-identity";
import { formatHostPort } from "../config/address.js";
import {
  type InboundConfig,
  inboundSchema,
  type OutboundConfig,
  outboundSchema,
} from "../config/schema.js";
import { Inbound } from "../inbound/inbound.js";
import { createLogger } from "../log.js";
import { ProxyMetrics } from "../metrics/proxy-metrics.js";
import { Outbound } from "../outbound/outbound.js";
import type { MeshIdentity } from "../transport/mtls/identity.js";
import {
  type PeerDone,
  type PeerDrive,
  type PeerListening,
  type PeerProgress,
  type PeerStart,
  warmupPeerMain,
} from "./peer.js";

/** What {@link warmUpPipeline} needs from the proxy it warms. */
export interface WarmupOptions {
  /** Requests to send through each side; 0 skips the warm-up. */
  requests: number;
  /** Wall-clock budget (waiting for the first SVID included): the warm-up stops here. */
  timeoutMs: number;
  /** Warm the outbound side (the proxy has one), with this `meshHttp1`. */
  outbound?: { meshHttp1: OutboundConfig["meshHttp1"] } | undefined;
  /** Warm the inbound side (the proxy has one). */
  inbound?: boolean;
  /** The proxy's identity: the warm-up's mesh hop is mTLS with it, as between real peers. */
  identity?: MeshIdentity | undefined;
  /** Requests in flight at once per side. Default 8. */
  concurrency?: number;
}

/** What a warm-up did. */
export interface WarmupResult {
  /** Requests answered 200 through the private outbound. */
  outbound: number;
  /** Requests answered 200 through the private inbound. */
  inbound: number;
  /** Requests or steps that failed (the first error is in `error`). */
  failed: number;
  /** Wall-clock time, ms. */
  ms: number;
  /** True when `timeoutMs` ran out before the warm-up finished. */
  timedOut: boolean;
  /** Whether the mesh hop was mTLS (an SVID was held in time). */
  mtls: boolean;
  /** The first failure, if any. */
  error?: string;
}

const LOOPBACK = "127.0.0.1";
/** The one authority the private outbound routes (and the inbound sees). */
const AUTHORITY = "mesh-warmup";

/**
 * Warms this process's request path before it reports ready.
 *
 * Why: a fresh Node proxy runs its per-request code in V8's interpreter and baseline tiers
 * for its first thousands of requests (~2× the CPU per request; a fresh pair cannot keep up
 * with 1000 rps for its first ~2 s). V8 keeps type feedback and optimized code per function,
 * not per object, so requests through *private* instances of the same `Outbound` and
 * `Inbound` classes warm the real listeners too.
 *
 * HTTP/1.1 only, the common case: warming gRPC as well (a third of the calls, h2c in and out)
 * did not shorten gRPC's own cold start (p99 of the first 20,000 calls 1.6–1.7 s either way),
 * and it left the HTTP/1 path's shared code polymorphic: 10–25 % more CPU per request at
 * steady state (measured, `scripts/perf/pair.mjs --cold 20`).
 *
 * How: the private instances listen on loopback ephemeral ports with their own metrics and
 * a silent logger (nothing shows in `/metrics`, logs or tap). Everything on the far side
 * of a connection — the HTTP/1.1 client of the outbound, the peer inbound it sends to
 * (mTLS with this proxy's own SVID), the mTLS client of the inbound and its app — runs in
 * a short-lived child process (peer.ts). That matters: had this process also run the
 * server side of HTTP/2 where it is only ever a client (or the reverse), V8's shared
 * feedback in node:http2, streams and undici would turn polymorphic and the proxy would
 * stay ~20 % slower per request for good (measured). The real app and peers never see a
 * request. (No forced GC after it: `--expose-gc` set at run time made every later request
 * cost ~3.7× the instructions under callgrind.)
 *
 * Never throws: a failed warm-up is reported in the result, and the proxy serves anyway.
 */
export async function warmUpPipeline(o: WarmupOptions): Promise<WarmupResult> {
  const started = performance.now();
  const result: WarmupResult = {
    outbound: 0,
    inbound: 0,
    failed: 0,
    ms: 0,
    timedOut: false,
    mtls: false,
  };
  if (o.requests <= 0 || (o.outbound === undefined && o.inbound !== true)) return result;
  const deadline = started + o.timeoutMs;
  const left = () => Math.max(0, deadline - performance.now());
  // Its own, so nothing of the warm-up shows in /metrics; closed after (it would otherwise
  // keep counting the real traffic's mesh events too).
  const metrics = new ProxyMetrics();
  let peer: ChildProcess | undefined;
  let inbound: Inbound | undefined;
  let outbound: Outbound | undefined;
  try {
    // The mesh hop is what most needs warming: wait (within the budget) for the first SVID.
    if (o.identity !== undefined && !o.identity.isReady())
      await within(
        o.identity.ready().catch(() => undefined),
        left(),
      );
    const identity = o.identity?.isReady() === true ? o.identity : undefined;
    result.mtls = identity !== undefined;
    const deps = {
      logger: createLogger("silent"),
      metrics,
      proxyId: "mesh-warmup",
      accessLog: false,
      identity,
      material: identity?.source,
    };
    peer = startPeer();
    const tls = identity === undefined ? null : serverTlsOptions(identity.source);
    const start: PeerStart = {
      type: "start",
      tls:
        tls === null ? null : { cert: String(tls.cert), key: String(tls.key), ca: String(tls.ca) },
    };
    peer.send(start);
    const ports = await within(message<PeerListening>(peer, "listening"), left());
    if (ports === undefined) throw new TimeoutReached();
    let inboundPort: number | null = null;
    let outboundPort: number | null = null;
    // Everything the private sides do (their connections, requests, retries, balancers)
    // runs unobserved: the proxy's metrics and tap count only real traffic.
    await runUnobserved(async () => {
      if (o.inbound === true) {
        inbound = new Inbound(privateInbound(ports.appPort, identity !== undefined), deps);
        inboundPort = (await inbound.listener.listen(`${LOOPBACK}:0`)).port;
      }
      if (o.outbound !== undefined) {
        const peerAt = formatHostPort(LOOPBACK, ports.peerPort);
        outbound = new Outbound(privateOutbound(peerAt, identity?.id, o.outbound.meshHttp1), deps);
        outboundPort = (await outbound.listener.listen(`${LOOPBACK}:0`)).port;
      }
    });
    const drive: PeerDrive = {
      type: "drive",
      outboundPort,
      inboundPort,
      meshHttp1: o.outbound?.meshHttp1 ?? "h2",
      requests: o.requests,
      concurrency: o.concurrency ?? 8,
      authority: AUTHORITY,
    };
    peer.on("message", (m: PeerProgress | PeerDone) => {
      if (m.type !== "progress") return;
      result.outbound = m.outbound;
      result.inbound = m.inbound;
    });
    peer.send(drive);
    const done = await within(message<PeerDone>(peer, "done"), left());
    if (done === undefined) throw new TimeoutReached();
    result.outbound = done.outbound;
    result.inbound = done.inbound;
    result.failed += done.failed;
    if (done.error !== null) result.error = done.error;
  } catch (err) {
    if (err instanceof TimeoutReached) result.timedOut = true;
    else {
      result.failed++;
      result.error ??= err instanceof Error ? err.message : String(err);
    }
  } finally {
    peer?.kill();
    const sides = [outbound, inbound];
    await runUnobserved(() => Promise.allSettled(sides.map((side) => side?.close(0))));
    metrics.close();
    result.ms = Math.round(performance.now() - started);
  }
  return result;
}

class TimeoutReached extends Error {}

/** A private inbound: the child's HTTP/1.1 app behind it, every mesh client allowed. */
function privateInbound(appPort: number, mtls: boolean): InboundConfig {
  return inboundSchema.parse({
    listen: `${LOOPBACK}:0`,
    app: formatHostPort(LOOPBACK, appPort),
    appProtocol: "http1",
    policy: { default: mtls ? "all-authenticated" : "all-unauthenticated" },
  });
}

/** The private outbound: one service whose endpoint is the child's peer inbound. */
function privateOutbound(
  peerAt: string,
  identity: string | undefined,
  meshHttp1: OutboundConfig["meshHttp1"],
): OutboundConfig {
  return outboundSchema.parse({
    listen: `${LOOPBACK}:0`,
    unknownAuthority: "deny",
    requireIdentity: identity !== undefined,
    meshHttp1,
    services: [
      {
        name: AUTHORITY,
        authorities: [AUTHORITY],
        discovery: { static: [identity === undefined ? peerAt : { address: peerAt, identity }] },
      },
    ],
  });
}

/** The child process running {@link warmupPeerMain}, with an IPC channel. */
function startPeer(): ChildProcess {
  // Not fork(): none of the proxy's node flags (e.g. an inspector port) apply to the peer.
  const child: ChildProcess = spawn(process.execPath, ["-e", `(${warmupPeerMain.toString()})()`], {
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    env: { PATH: process.env.PATH ?? "" },
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    if (stderr.length < 2_000) stderr += d.toString();
  });
  child.once("exit", (code, signal) => {
    if (code !== 0 && signal === null)
      child.emit("peer-failed", new Error(`warm-up peer exited ${code}: ${stderr.trim()}`));
  });
  return child;
}

/** The child's next message of `type`; rejects if it fails or exits first. */
function message<T extends { type: string }>(child: ChildProcess, type: T["type"]): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type?: string }) => {
      if (m?.type !== type) return;
      cleanup();
      resolve(m as T);
    };
    const onFail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onExit = () => onFail(new Error("warm-up peer exited"));
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("peer-failed", onFail);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("peer-failed", onFail);
    child.once("exit", onExit);
  });
}

/** `p`'s value, or undefined once `ms` passed first. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
