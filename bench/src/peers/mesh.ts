/**
 * The @mesh proxy as a peer: generates a config and starts `packages/proxy/dist/cli.js`
 * (the `mesh-proxy` bin) as an outbound-only single hop, or as a sidecar pair
 * (outbound → inbound → backend).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK, waitForPort } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import { REPO_ROOT } from "../load/mesh-adapters.ts";
import type { RunningPeer } from "./proxies.ts";

/**
 * V8 flags for the tuned single-hop variant: a smaller young generation keeps Node 24's
 * RSS under load close to Node 20's (see reference/bench-anchors-this-machine.md).
 */
export const TUNED_NODE_FLAGS = ["--max-semi-space-size=16"];

function writeConfig(ctx: BenchContext, name: string, config: object): string {
  const dir = join(ctx.tmpDir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "proxy.json");
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

async function startProxy(
  ctx: BenchContext,
  name: string,
  configFile: string,
  port: number,
  nodeFlags: string[] = [],
): Promise<ManagedProcess> {
  const cli = join(REPO_ROOT, "packages", "proxy", "dist", "cli.js");
  const proc = ctx.pm.start(name, process.execPath, [...nodeFlags, cli, "--config", configFile], {
    cpus: ctx.pinning.peer,
  });
  await waitForPort(port, 15_000, () => ctx.pm.livePids().includes(proc.pid)).catch(
    (error: Error) => {
      throw new Error(`${error.message}; stderr: ${proc.stderr().slice(-600)}`);
    },
  );
  return proc;
}

/** Outbound-only proxy routing every request to the backend. */
export async function startMeshSingleHop(
  ctx: BenchContext,
  upstreamPort: number,
  nodeFlags: string[] = [],
): Promise<RunningPeer> {
  const port = await freePort();
  const admin = await freePort();
  const config = {
    proxyId: "bench-outbound",
    admin: { listen: `${LOOPBACK}:${admin}` },
    log: { level: "warn", accessLog: false },
    outbound: {
      listen: `${LOOPBACK}:${port}`,
      unknownAuthority: "deny",
      services: [
        {
          name: "backend",
          authorities: [`${LOOPBACK}:${port}`, "backend"],
          discovery: { static: [`${LOOPBACK}:${upstreamPort}`] },
          protocol: "http1",
        },
      ],
    },
  };
  const proc = await startProxy(
    ctx,
    "mesh-outbound",
    writeConfig(ctx, "mesh-single", config),
    port,
    nodeFlags,
  );
  return { url: `http://${LOOPBACK}:${port}/`, procs: [proc] };
}

/** Outbound proxy → inbound proxy → backend; CPU and RSS are summed over both. */
export async function startMeshSidecarPair(
  ctx: BenchContext,
  upstreamPort: number,
  appProtocol: "http1" | "h2c" = "http1",
): Promise<RunningPeer> {
  const outPort = await freePort();
  const inPort = await freePort();
  const inbound = {
    proxyId: "bench-inbound",
    admin: { listen: `${LOOPBACK}:${await freePort()}` },
    log: { level: "warn", accessLog: false },
    inbound: {
      listen: `${LOOPBACK}:${inPort}`,
      app: `${LOOPBACK}:${upstreamPort}`,
      appProtocol,
    },
  };
  const outbound = {
    proxyId: "bench-outbound",
    admin: { listen: `${LOOPBACK}:${await freePort()}` },
    log: { level: "warn", accessLog: false },
    outbound: {
      listen: `${LOOPBACK}:${outPort}`,
      unknownAuthority: "deny",
      services: [
        {
          name: "backend",
          authorities: [`${LOOPBACK}:${outPort}`, "backend"],
          discovery: { static: [{ address: `${LOOPBACK}:${inPort}`, protocol: "h2c" }] },
          protocol: "h2c",
        },
      ],
    },
  };
  const inProc = await startProxy(
    ctx,
    "mesh-inbound",
    writeConfig(ctx, "mesh-inbound", inbound),
    inPort,
  );
  const outProc = await startProxy(
    ctx,
    "mesh-outbound",
    writeConfig(ctx, "mesh-outbound", outbound),
    outPort,
  );
  return {
    url: `http://${LOOPBACK}:${outPort}/`,
    procs: [outProc, inProc],
    notes: [
      "sidecar pair runs outbound → h2c → inbound: the proxy config has no identity/mTLS section yet, so this hop is plaintext HTTP/2",
    ],
  };
}
