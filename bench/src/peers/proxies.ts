/**
 * The proxies compared in `overhead`: each knows whether it can run here and how to start
 * in front of a backend, bound to 127.0.0.1 only, as processes the harness owns.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK, waitForPort } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import { SRC_DIR } from "../lib/runners.ts";
import { ensureTool } from "../lib/tools.ts";
import { REPO_ROOT } from "../load/mesh-adapters.ts";
import { startMeshSidecarPair, startMeshSingleHop, TUNED_NODE_FLAGS } from "./mesh.ts";

/** A started proxy. */
export interface RunningPeer {
  /** URL the load generator requests. */
  url: string;
  /** The proxy processes (CPU and RSS are summed over them). Empty for `direct`. */
  procs: ManagedProcess[];
  notes?: string[];
}

/** A proxy the overhead scenario can run. */
export interface PeerDefinition {
  name: string;
  describe: string;
  /** `null` when it can run, else why not. */
  unavailable(ctx: BenchContext): Promise<string | null>;
  start(ctx: BenchContext, upstreamPort: number): Promise<RunningPeer>;
}

async function startNodePeer(
  ctx: BenchContext,
  name: string,
  script: string,
  upstreamPort: number,
  extra: string[] = [],
): Promise<RunningPeer> {
  const port = await freePort();
  const proc = ctx.pm.start(
    name,
    process.execPath,
    [join(SRC_DIR, "peers", script), String(port), `http://${LOOPBACK}:${upstreamPort}`, ...extra],
    { cpus: ctx.pinning.peer },
  );
  await proc.waitForLine(/^READY /, 15_000);
  return { url: `http://${LOOPBACK}:${port}/`, procs: [proc] };
}

/** Waits for `proc` to accept connections on `port`; the error carries its stderr. */
export async function waitUp(ctx: BenchContext, proc: ManagedProcess, port: number): Promise<void> {
  await waitForPort(port, 10_000, () => ctx.pm.livePids().includes(proc.pid)).catch(
    (error: Error) => {
      throw new Error(
        `${proc.name}: ${error.message}; stderr: ${proc.stderr().trim().slice(-400)}`,
      );
    },
  );
}

/** Looks `tool` up (installing it when allowed), records it; `null` when usable, else why not. */
export function toolReason(ctx: BenchContext, tool: string): string | null {
  const status = ensureTool(tool, ctx.install);
  ctx.tools.set(tool, status);
  return status.available ? null : `${tool}: ${status.reason}`;
}

function peerDir(ctx: BenchContext, name: string): string {
  const dir = join(ctx.tmpDir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * An nginx configuration for one foreground worker (no master) whose pid, logs and temp
 * files live in `dir`, with `http` holding the upstreams and servers.
 */
export function nginxConf(dir: string, http: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  ${http}
}
`;
}

/** Starts a peer from a config text (in `dir`) pinned like every peer; waits for `port`. */
export type StartConfigured = (
  ctx: BenchContext,
  name: string,
  dir: string,
  conf: string,
  port: number,
) => Promise<ManagedProcess>;

/**
 * How nginx and HAProxy peers start: write the config where `layout` says, start the Debian
 * `tool` with the arguments that name it, pinned like every peer, and wait for the port.
 */
function configuredStarter(
  tool: "nginx" | "haproxy",
  layout: (dir: string, name: string) => { file: string; args: string[] },
): StartConfigured {
  return async (ctx, name, dir, conf, port) => {
    const { file, args } = layout(dir, name);
    writeFileSync(file, conf);
    const bin = ensureTool(tool, false).path!;
    const proc = ctx.pm.start(name, bin, args, { cpus: ctx.pinning.peer });
    await waitUp(ctx, proc, port);
    return proc;
  };
}

/** Starts `nginx -p <dir> -c <dir>/nginx.conf`. */
export const startNginx = configuredStarter("nginx", (dir) => {
  const file = join(dir, "nginx.conf");
  return { file, args: ["-p", dir, "-c", file] };
});

/** nginx: one worker in the foreground (no master), upstream keepalive, loopback only. */
const nginx: PeerDefinition = {
  name: "nginx",
  describe: "nginx, 1 worker (master_process off), upstream keepalive 64, HTTP/1.1 upstream",
  unavailable: async (ctx) => toolReason(ctx, "nginx"),
  async start(ctx, upstreamPort) {
    const port = await freePort();
    const dir = peerDir(ctx, "nginx");
    const conf = nginxConf(
      dir,
      `upstream backend { server ${LOOPBACK}:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen ${LOOPBACK}:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }`,
    );
    const proc = await startNginx(ctx, "nginx", dir, conf, port);
    return { url: `http://${LOOPBACK}:${port}/`, procs: [proc] };
  },
};

/**
 * An HAProxy configuration: one thread, HTTP mode, keep-alive both sides, connection reuse;
 * `bind` and `server` are the rest of their lines (addresses and TLS options).
 */
export function haproxyConf(bind: string, server: string): string {
  return `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind ${bind}
  default_backend be
backend be
  server s1 ${server} maxconn 1000
`;
}

/** Starts `haproxy -db -f <dir>/<name>.cfg`. */
export const startHaproxy = configuredStarter("haproxy", (dir, name) => {
  const file = join(dir, `${name}.cfg`);
  return { file, args: ["-db", "-f", file] };
});

/** HAProxy: one thread, foreground, keep-alive both sides, connection reuse. */
const haproxy: PeerDefinition = {
  name: "haproxy",
  describe: "HAProxy, nbthread 1, http-keep-alive, http-reuse always",
  unavailable: async (ctx) => toolReason(ctx, "haproxy"),
  async start(ctx, upstreamPort) {
    const port = await freePort();
    const conf = haproxyConf(`${LOOPBACK}:${port}`, `${LOOPBACK}:${upstreamPort}`);
    const proc = await startHaproxy(ctx, "haproxy", peerDir(ctx, "haproxy"), conf, port);
    return { url: `http://${LOOPBACK}:${port}/`, procs: [proc] };
  },
};

/** All peers of the overhead scenario, in report order. */
export const OVERHEAD_PEERS: PeerDefinition[] = [
  {
    name: "direct",
    describe: "no proxy: the load generator talks to the backend",
    unavailable: async () => null,
    start: async (_ctx, upstreamPort) => ({
      url: `http://${LOOPBACK}:${upstreamPort}/`,
      procs: [],
    }),
  },
  nginx,
  haproxy,
  {
    name: "undici-stream",
    describe: "minimal undici Pool.stream pass-through on node:http (the Node floor)",
    unavailable: async () => null,
    start: (ctx, up) => startNodePeer(ctx, "undici-stream", "undici-stream.mjs", up),
  },
  {
    name: "http-proxy-3",
    describe: "http-proxy-3 on node:http with a keep-alive agent",
    unavailable: async () => null,
    start: (ctx, up) => startNodePeer(ctx, "http-proxy-3", "http-proxy3.mjs", up),
  },
  {
    name: "fastify-http-proxy",
    describe: "@fastify/http-proxy on Fastify (undici underneath), logger off",
    unavailable: async () => null,
    start: (ctx, up) => startNodePeer(ctx, "fastify-http-proxy", "fastify-proxy.mjs", up),
  },
  {
    name: "mesh-single-hop",
    describe: "@mesh/proxy outbound only (mesh-proxy, default flags)",
    unavailable: async () => meshProxyUnavailable(),
    start: (ctx, up) => startMeshSingleHop(ctx, up),
  },
  {
    name: "mesh-single-hop-tuned",
    describe: `@mesh/proxy outbound only, node ${TUNED_NODE_FLAGS.join(" ")}`,
    unavailable: async () => meshProxyUnavailable(),
    start: (ctx, up) => startMeshSingleHop(ctx, up, TUNED_NODE_FLAGS),
  },
  {
    name: "mesh-sidecar-pair",
    describe: "@mesh/proxy outbound → mTLS (HTTP/2) → inbound",
    unavailable: async () => meshProxyUnavailable(),
    start: (ctx, up) => startMeshSidecarPair(ctx, up),
  },
];

/** Why the @mesh proxy cannot run yet, or null. */
export function meshProxyUnavailable(): string | null {
  const cli = join(REPO_ROOT, "packages", "proxy", "dist", "cli.js");
  return existsSync(cli)
    ? null
    : "packages/proxy/dist/cli.js not built yet (the proxy has no CLI entry yet)";
}
