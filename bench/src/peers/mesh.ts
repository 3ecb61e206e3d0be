/**
 * The @mesh proxy as a peer: generates a config and starts `packages/proxy/dist/cli.js`
 * (the `mesh-proxy` bin) as an outbound-only single hop, or as a sidecar pair
 * (outbound → mTLS → inbound → backend), the path every meshed request takes.
 */
import type { KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK, waitForPort, waitForReady } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import { importMesh, REPO_ROOT } from "../load/mesh-adapters.ts";
import type { RunningPeer } from "./proxies.ts";

/** Trust domain and SPIFFE IDs of the sidecar pair. */
export const PAIR_TRUST_DOMAIN = "bench.mesh.local";
export const PAIR_OUTBOUND_ID = `spiffe://${PAIR_TRUST_DOMAIN}/ns/bench/sa/client`;
export const PAIR_INBOUND_ID = `spiffe://${PAIR_TRUST_DOMAIN}/ns/bench/sa/server`;

/**
 * V8 flags for the tuned single-hop variant: a smaller young generation keeps Node 24's
 * RSS under load close to Node 20's (see reference/bench-anchors-this-machine.md).
 */
export const TUNED_NODE_FLAGS = ["--max-semi-space-size=16"];

/** A fresh directory under the run's temp dir for one peer's files. */
export function runDir(ctx: BenchContext, name: string): string {
  const dir = join(ctx.tmpDir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes `config` as `<name>.json` in `dir` (a fresh {@link runDir} by default). */
export function writeConfig(
  ctx: BenchContext,
  name: string,
  config: object,
  dir = runDir(ctx, name),
): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** PEM files of one proxy's identity, as `identity.files` takes them. */
export interface IdentityFiles {
  cert: string;
  key: string;
  bundle: string;
}

/**
 * A fresh trust domain: a root and an intermediate CA from @mesh/tls-identity, and an
 * X.509-SVID for each of `ids` (file name → SPIFFE ID), written as PEM into `dir`, as
 * `identity.files` takes them.
 */
export async function issueIdentities<N extends string>(
  dir: string,
  ids: Record<N, string>,
): Promise<Record<N, IdentityFiles>> {
  const mod = await importMesh("tls-identity");
  type Svid = { chainPem: string; privateKey: KeyObject };
  type Authority = { issue(id: string): Svid; bundle: { pem: string } };
  const createTrustAnchor = mod.createTrustAnchor as (o: { trustDomain: string }) => {
    createAuthority(): Authority;
  };
  const ca = createTrustAnchor({ trustDomain: PAIR_TRUST_DOMAIN }).createAuthority();
  const bundle = join(dir, "bundle.pem");
  writeFileSync(bundle, ca.bundle.pem);
  const out = {} as Record<N, IdentityFiles>;
  for (const [name, id] of Object.entries(ids) as Array<[N, string]>) {
    const svid = ca.issue(id);
    const cert = join(dir, `${name}.crt.pem`);
    const key = join(dir, `${name}.key.pem`);
    writeFileSync(cert, svid.chainPem);
    writeFileSync(key, svid.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), {
      mode: 0o600,
    });
    out[name] = { cert, key, bundle };
  }
  return out;
}

/** One CA and both proxies' SVID files in `dir`, as `identity.files` takes them. */
export async function pairIdentities(
  dir: string,
): Promise<{ outbound: IdentityFiles; inbound: IdentityFiles }> {
  return await issueIdentities(dir, { outbound: PAIR_OUTBOUND_ID, inbound: PAIR_INBOUND_ID });
}

/** Starts `mesh-proxy --config <file>` (pinned like every peer) and waits for its listener. */
export async function startProxy(
  ctx: BenchContext,
  name: string,
  configFile: string,
  port: number,
  nodeFlags: string[] = [],
  env: Record<string, string> = {},
): Promise<ManagedProcess> {
  const cli = join(REPO_ROOT, "packages", "proxy", "dist", "cli.js");
  const proc = ctx.pm.start(name, process.execPath, [...nodeFlags, cli, "--config", configFile], {
    cpus: ctx.pinning.peer,
    // `--quick` smoke runs measure nothing: skip the seconds of warm-up per proxy there.
    env: ctx.quick ? { MESH_PROXY_WARMUP__REQUESTS: "0", ...env } : env,
  });
  const alive = () => ctx.pm.livePids().includes(proc.pid);
  // Traffic starts once the proxy is ready (SVID, Kubernetes lists, warm-up done), as in a
  // cluster; the admin address is the config's (unknown when it asks for port 0).
  const admin = (JSON.parse(readFileSync(configFile, "utf8")) as { admin?: { listen?: string } })
    .admin?.listen;
  const readyAt = admin === undefined || admin.endsWith(":0") ? undefined : admin;
  await waitForPort(port, 15_000, alive)
    .then(() => (readyAt === undefined ? undefined : waitForReady(readyAt, 30_000, alive)))
    .catch((error: Error) => {
      throw new Error(`${error.message}; stderr: ${proc.stderr().slice(-600)}`);
    });
  return proc;
}

/**
 * The config of an outbound-only proxy on `port` with one HTTP/1.1 service, `backend`,
 * balanced over `endpoints` (host:port); `service` adds fields to that service.
 */
function outboundHopConfig(
  proxyId: string,
  port: number,
  admin: string,
  endpoints: string[],
  service: object = {},
): object {
  return {
    proxyId,
    admin: { listen: admin },
    log: { level: "warn", accessLog: false },
    outbound: {
      listen: `${LOOPBACK}:${port}`,
      unknownAuthority: "deny",
      services: [
        {
          name: "backend",
          authorities: [`${LOOPBACK}:${port}`, "backend"],
          discovery: { static: endpoints },
          protocol: "http1",
          ...service,
        },
      ],
    },
  };
}

/** Outbound-only proxy routing every request to the backend. */
export async function startMeshSingleHop(
  ctx: BenchContext,
  upstreamPort: number,
  nodeFlags: string[] = [],
): Promise<RunningPeer> {
  const port = await freePort();
  const admin = `${LOOPBACK}:${await freePort()}`;
  const config = outboundHopConfig("bench-outbound", port, admin, [`${LOOPBACK}:${upstreamPort}`]);
  const proc = await startProxy(
    ctx,
    "mesh-outbound",
    writeConfig(ctx, "mesh-single", config),
    port,
    nodeFlags,
  );
  return { url: `http://${LOOPBACK}:${port}/`, procs: [proc] };
}

/** The inbound side of a sidecar pair: mTLS from meshed peers only, to the app on `appPort`. */
export function pairInboundSection(inPort: number, appPort: number, appProtocol: string): object {
  return {
    listen: `${LOOPBACK}:${inPort}`,
    app: `${LOOPBACK}:${appPort}`,
    appProtocol,
    policy: { default: "all-authenticated" },
  };
}

/** The outbound side of a sidecar pair: one service whose endpoint is the peer's inbound. */
export function pairOutboundSection(outPort: number, inPort: number, inboundId: string): object {
  return {
    listen: `${LOOPBACK}:${outPort}`,
    unknownAuthority: "deny",
    requireIdentity: true,
    services: [
      {
        name: "backend",
        authorities: [`${LOOPBACK}:${outPort}`, "backend"],
        discovery: { static: [{ address: `${LOOPBACK}:${inPort}`, identity: inboundId }] },
      },
    ],
  };
}

/**
 * The sidecar pair as a mesh runs it: outbound proxy → mTLS (TLS 1.3, SPIFFE X.509-SVIDs from
 * one CA, the inbound's identity checked by the outbound, client certificate required by the
 * inbound, policy `all-authenticated`, ALPN h2) → inbound proxy → backend over `appProtocol`.
 * CPU and RSS are summed over both proxies.
 */
export async function startMeshSidecarPair(
  ctx: BenchContext,
  upstreamPort: number,
  appProtocol: "http1" | "h2c" = "http1",
  /** `outbound.meshHttp1`: how HTTP/1 crosses between the proxies (the proxy's default: h2). */
  meshHttp1?: "h2" | "http1",
): Promise<RunningPeer> {
  const outPort = await freePort();
  const inPort = await freePort();
  const dir = runDir(ctx, "mesh-pair");
  const ids = await pairIdentities(dir);
  const inbound = {
    proxyId: "bench-inbound",
    admin: { listen: `${LOOPBACK}:${await freePort()}` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_INBOUND_ID, files: ids.inbound },
    inbound: pairInboundSection(inPort, upstreamPort, appProtocol),
  };
  const outbound = {
    proxyId: "bench-outbound",
    admin: { listen: `${LOOPBACK}:${await freePort()}` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_OUTBOUND_ID, files: ids.outbound },
    outbound: {
      ...pairOutboundSection(outPort, inPort, PAIR_INBOUND_ID),
      ...(meshHttp1 === undefined ? {} : { meshHttp1 }),
    },
  };
  const inProc = await startProxy(
    ctx,
    "mesh-inbound",
    writeConfig(ctx, "mesh-inbound", inbound, dir),
    inPort,
  );
  const outProc = await startProxy(
    ctx,
    "mesh-outbound",
    writeConfig(ctx, "mesh-outbound", outbound, dir),
    outPort,
  );
  return {
    url: `http://${LOOPBACK}:${outPort}/`,
    procs: [outProc, inProc],
    notes: [
      meshHttp1 === "http1"
        ? "mesh-pair-http1-hop: the @mesh pair with outbound.meshHttp1: http1, HTTP/1.1 over a pool of keep-alive mTLS connections between the proxies (ALPN http/1.1) instead of one HTTP/2 connection"
        : `sidecar pair runs outbound → mTLS → inbound: TLS 1.3 with X.509-SVIDs from one @mesh/tls-identity CA (${PAIR_OUTBOUND_ID} → ${PAIR_INBOUND_ID}), the inbound's SPIFFE ID verified by the outbound, client certificate required, inbound policy all-authenticated, HTTP/2 (ALPN h2) between the proxies (HTTP/1.1 requests ride it with mesh-orig-proto)`,
    ],
  };
}

/** An outbound-only proxy balancing one service over several endpoints. */
export interface MeshBalancingHop {
  /** Where clients send requests (`Host` routes to the service). */
  url: string;
  /** The admin listener, `host:port` (`/endpoints`, `/metrics`). */
  admin: string;
  proc: ManagedProcess;
}

/**
 * Outbound-only proxy whose one service balances over `endpointPorts` (HTTP/1.1, static
 * discovery), with `service` merged into the service's config (e.g. `failureAccrual`,
 * `balancer`, `retry`, `rateLimit`).
 */
export async function startMeshBalancingHop(
  ctx: BenchContext,
  name: string,
  endpointPorts: number[],
  service: object = {},
): Promise<MeshBalancingHop> {
  const port = await freePort();
  const admin = `${LOOPBACK}:${await freePort()}`;
  const config = outboundHopConfig(
    `bench-${name}`,
    port,
    admin,
    endpointPorts.map((p) => `${LOOPBACK}:${p}`),
    service,
  );
  const proc = await startProxy(ctx, name, writeConfig(ctx, name, config), port);
  return { url: `http://${LOOPBACK}:${port}/`, admin, proc };
}
