/**
 * The reference sidecar pairs measured next to the @mesh pair, in the same run and by the
 * same method (`overhead` for HTTP/1.1, `grpc` for gRPC): the minimal Node mTLS pair
 * (`node-pair.mjs`, Node's floor) and the nginx mTLS pair (C). Every pair is two proxy
 * processes with the @mesh pair's certificates (one @mesh/tls-identity CA per start,
 * X.509-SVIDs for the same SPIFFE IDs), TLS 1.3 and client certificates required; CPU and
 * RSS are read per proxy and summed, as for @mesh.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { freePort, LOOPBACK } from "../lib/net.ts";
import type { ManagedProcess } from "../lib/proc.ts";
import { SRC_DIR } from "../lib/runners.ts";
import {
  PAIR_INBOUND_ID,
  PAIR_TRUST_DOMAIN,
  pairIdentities,
  pairInboundSection,
  runDir,
  startMeshSidecarPair,
  startProxy,
  writeConfig,
} from "./mesh.ts";
import { NODE_PAIR_SCRIPT, nodePairArgs } from "./node-pair-args.ts";
import {
  haproxyConf,
  meshProxyUnavailable,
  nginxConf,
  type PeerDefinition,
  type RunningPeer,
  startHaproxy,
  startNginx,
  toolReason,
} from "./proxies.ts";

/** What the pair carries from the app's side: HTTP/1.1 (`overhead`) or gRPC over h2c (`grpc`). */
export type PairProtocol = "http1" | "grpc";

/** Starts `pair[0]`, then `pair[1]`; stops what started if a later one fails. */
async function startBoth(
  ctx: BenchContext,
  starts: Array<() => Promise<ManagedProcess>>,
): Promise<ManagedProcess[]> {
  const procs: ManagedProcess[] = [];
  try {
    for (const start of starts) procs.push(await start());
    return procs;
  } catch (error) {
    for (const p of procs) await ctx.pm.stop(p);
    throw error;
  }
}

/**
 * The minimal Node pair: outbound node:http (h2c for gRPC) → one node:http2 TLS 1.3 session
 * with a client certificate → inbound `http2.createSecureServer({ requestCert: true })` →
 * undici `pool.dispatch` to the app (one h2c session for gRPC). Default V8 flags.
 */
export async function startNodePair(
  ctx: BenchContext,
  appPort: number,
  protocol: PairProtocol,
): Promise<RunningPeer> {
  const ids = await pairIdentities(runDir(ctx, "node-pair"));
  const inPort = await freePort();
  const outPort = await freePort();
  const args = nodePairArgs({
    ids,
    inPort,
    outPort,
    appOrigin: `http://${LOOPBACK}:${appPort}`,
    h2: protocol === "grpc",
  });
  const start = (name: string, roleArgs: string[]) => async () => {
    const proc = ctx.pm.start(name, process.execPath, [NODE_PAIR_SCRIPT, ...roleArgs], {
      cpus: ctx.pinning.peer,
    });
    await proc.waitForLine(/^READY /, 15_000);
    return proc;
  };
  const [inProc, outProc] = await startBoth(ctx, [
    start("node-pair-inbound", args.inbound),
    start("node-pair-outbound", args.outbound),
  ]);
  return {
    url: `http://${LOOPBACK}:${outPort}/`,
    procs: [outProc!, inProc!],
    notes: [
      `node-pair (the minimal Node mTLS pair, src/peers/node-pair.mjs): the @mesh pair's certificates and SPIFFE IDs, TLS 1.3, client certificate required, the inbound's SPIFFE ID checked by the outbound; ${protocol === "grpc" ? "h2c in, one node:http2 TLS session between the proxies, one h2c session to the server, trailers relayed" : "node:http in, one node:http2 TLS session between the proxies, undici Pool (64 connections) pool.dispatch() to the backend"}; default V8 flags`,
    ],
  };
}

/**
 * The nginx mTLS pair, one worker each: outbound (plain HTTP/1.1 in; h2c for gRPC) →
 * `proxy_pass https://` (`grpc_pass grpcs://`) with a client certificate over TLS 1.3 and
 * upstream keep-alive → inbound (`ssl_verify_client on`) → the app with keep-alive.
 */
export async function startNginxPair(
  ctx: BenchContext,
  appPort: number,
  protocol: PairProtocol,
): Promise<RunningPeer> {
  const dir = runDir(ctx, "nginx-pair");
  const ids = await pairIdentities(dir);
  const inPort = await freePort();
  const outPort = await freePort();
  const grpc = protocol === "grpc";
  const keepalive = "keepalive 64; keepalive_requests 1000000;";
  // HTTP/1.1 with keep-alive upstream; gRPC: nginx's grpc module (HTTP/2 upstream).
  const pass = (scheme: string, extra = "") =>
    grpc
      ? `grpc_pass ${scheme === "https" ? "grpcs" : "grpc"}://up;${extra.replaceAll("proxy_", "grpc_")}`
      : `proxy_pass ${scheme}://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;${extra}`;
  const conf = (sub: string, upstreamPort: number, server: string) => {
    const d = join(dir, sub);
    mkdirSync(d, { recursive: true });
    return {
      dir: d,
      text: nginxConf(
        d,
        `upstream up { server ${LOOPBACK}:${upstreamPort}; ${keepalive} }\n  server {\n    ${server}\n  }`,
      ),
    };
  };
  const inbound = conf(
    "inbound",
    appPort,
    `listen ${LOOPBACK}:${inPort} ssl${grpc ? " http2" : ""};
    ssl_certificate ${ids.inbound.cert};
    ssl_certificate_key ${ids.inbound.key};
    ssl_protocols TLSv1.3;
    ssl_client_certificate ${ids.inbound.bundle};
    ssl_verify_client on;
    ssl_verify_depth 2;
    location / { ${pass("http")} }`,
  );
  const outbound = conf(
    "outbound",
    inPort,
    `listen ${LOOPBACK}:${outPort}${grpc ? " http2" : ""};
    location / { ${pass(
      "https",
      ` proxy_ssl_certificate ${ids.outbound.cert}; proxy_ssl_certificate_key ${ids.outbound.key}; proxy_ssl_protocols TLSv1.3; proxy_ssl_session_reuse on; proxy_ssl_verify off;`,
    )} }`,
  );
  const [inProc, outProc] = await startBoth(ctx, [
    () => startNginx(ctx, "nginx-pair-inbound", inbound.dir, inbound.text, inPort),
    () => startNginx(ctx, "nginx-pair-outbound", outbound.dir, outbound.text, outPort),
  ]);
  return {
    url: `http://${LOOPBACK}:${outPort}/`,
    procs: [outProc!, inProc!],
    notes: [
      `nginx-pair: one worker per nginx, the @mesh pair's certificates, TLS 1.3, the inbound requires a client certificate from the trust bundle (ssl_verify_client on); the outbound does not verify the inbound's certificate (proxy_ssl_verify checks a host name, and an X.509-SVID names a SPIFFE ID in a URI SAN only); ${grpc ? "h2c in, grpc_pass grpcs:// between the nginx (HTTP/2, one stream per upstream connection) with keep-alive, grpc_pass grpc:// to the server" : "HTTP/1.1 over up to 64 keep-alive TLS connections between the nginx (not one multiplexed HTTP/2 session), HTTP/1.1 keep-alive to the backend"}`,
    ],
  };
}

/**
 * The HAProxy mTLS pair (HTTP/1.1 only), one thread each: outbound → `ssl crt` (client
 * certificate) over TLS 1.3 with `http-reuse always` → inbound (`verify required`) → backend.
 * Unlike nginx, HAProxy verifies the inbound's chain against the bundle (no host name check).
 */
export async function startHaproxyPair(ctx: BenchContext, appPort: number): Promise<RunningPeer> {
  const dir = runDir(ctx, "haproxy-pair");
  const ids = await pairIdentities(dir);
  // HAProxy takes certificate chain and key in one PEM file.
  const pem = (name: string, f: { cert: string; key: string }) => {
    const file = join(dir, `${name}.pem`);
    writeFileSync(file, readFileSync(f.cert, "utf8") + readFileSync(f.key, "utf8"), {
      mode: 0o600,
    });
    return file;
  };
  const inPort = await freePort();
  const outPort = await freePort();
  const tls = `ca-file ${ids.inbound.bundle} verify required ssl-min-ver TLSv1.3`;
  const inbound = haproxyConf(
    `${LOOPBACK}:${inPort} ssl crt ${pem("inbound", ids.inbound)} ${tls}`,
    `${LOOPBACK}:${appPort}`,
  );
  const outbound = haproxyConf(
    `${LOOPBACK}:${outPort}`,
    `${LOOPBACK}:${inPort} ssl crt ${pem("outbound", ids.outbound)} ${tls} alpn http/1.1`,
  );
  const [inProc, outProc] = await startBoth(ctx, [
    () => startHaproxy(ctx, "haproxy-pair-inbound", dir, inbound, inPort),
    () => startHaproxy(ctx, "haproxy-pair-outbound", dir, outbound, outPort),
  ]);
  return {
    url: `http://${LOOPBACK}:${outPort}/`,
    procs: [outProc!, inProc!],
    notes: [
      "haproxy-pair: one thread per HAProxy, the @mesh pair's certificates, TLS 1.3, the inbound requires a client certificate from the trust bundle (verify required), the outbound verifies the inbound's chain (no name check: an X.509-SVID names a SPIFFE ID in a URI SAN); HTTP/1.1 over reused keep-alive TLS connections (http-reuse always) between the two, keep-alive to the backend",
    ],
  };
}

/**
 * The caller's outbound side in-process (src/peers/proxyless.mjs: @mesh/retry → @mesh/balancer
 * → undici Pool with @mesh/tls-identity's mTLS connector) in front of the @mesh inbound
 * sidecar: one proxy hop instead of two where the caller is a Node app.
 */
export async function startMeshProxyless(ctx: BenchContext, appPort: number): Promise<RunningPeer> {
  const dir = runDir(ctx, "mesh-proxyless");
  const ids = await pairIdentities(dir);
  const inPort = await freePort();
  const appSidePort = await freePort();
  const inbound = {
    proxyId: "bench-inbound",
    admin: { listen: `${LOOPBACK}:${await freePort()}` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_INBOUND_ID, files: ids.inbound },
    inbound: pairInboundSection(inPort, appPort, "http1"),
  };
  const script = join(SRC_DIR, "peers", "proxyless.mjs");
  const [inProc, appProc] = await startBoth(ctx, [
    () => startProxy(ctx, "mesh-inbound", writeConfig(ctx, "mesh-inbound", inbound, dir), inPort),
    async () => {
      const proc = ctx.pm.start(
        "proxyless-app",
        process.execPath,
        [
          script,
          String(appSidePort),
          `${LOOPBACK}:${inPort}`,
          "--cert",
          ids.outbound.cert,
          "--key",
          ids.outbound.key,
          "--ca",
          ids.outbound.bundle,
          "--peer-id",
          PAIR_INBOUND_ID,
        ],
        { cpus: ctx.pinning.peer },
      );
      await proc.waitForLine(/^READY /, 15_000);
      return proc;
    },
  ]);
  return {
    url: `http://${LOOPBACK}:${appSidePort}/`,
    procs: [appProc!, inProc!],
    notes: [
      "mesh-proxyless: the caller's outbound side in-process (src/peers/proxyless.mjs: node:http in, @mesh/retry → @mesh/balancer → undici Pool, HTTP/1.1 over keep-alive mTLS with @mesh/tls-identity's connector and the pair's client SVID, the inbound's SPIFFE ID checked; default V8 flags) → the @mesh inbound sidecar → backend. Its CPU and RSS are those of the app-side process doing the calls plus the inbound sidecar",
    ],
  };
}

/** The @mesh pair's design options (issue 17) as peers of the HTTP/1.1 `overhead` scenario. */
export function meshDesignPairs(): PeerDefinition[] {
  return [
    {
      name: "mesh-pair-http1-hop",
      describe:
        "@mesh/proxy outbound → HTTP/1.1 over keep-alive mTLS connections (outbound.meshHttp1: http1) → inbound",
      unavailable: async () => meshProxyUnavailable(),
      start: (ctx, up) => startMeshSidecarPair(ctx, up, "http1", "http1"),
    },
    {
      name: "mesh-proxyless",
      describe:
        "the caller's outbound side in-process (@mesh/retry + @mesh/balancer + @mesh/tls-identity on undici) → mTLS HTTP/1.1 → @mesh/proxy inbound",
      unavailable: async () => meshProxyUnavailable(),
      start: (ctx, up) => startMeshProxyless(ctx, up),
    },
  ];
}

/** The reference pairs as peers of a scenario, for `protocol` (HAProxy's for HTTP/1.1 only). */
export function referencePairs(protocol: PairProtocol): PeerDefinition[] {
  return [
    {
      name: "node-pair",
      describe:
        protocol === "grpc"
          ? "minimal Node mTLS pair: h2c → node:http2 TLS 1.3 session (client cert) → http2 secure server → h2c session to the server"
          : "minimal Node mTLS pair: node:http → node:http2 TLS 1.3 session (client cert) → http2 secure server → undici pool.dispatch",
      unavailable: async () => null,
      start: (ctx, up) => startNodePair(ctx, up, protocol),
    },
    {
      name: "nginx-pair",
      describe:
        protocol === "grpc"
          ? "nginx mTLS pair: nginx (h2c in) → grpc_pass grpcs:// (TLS 1.3, client cert, keep-alive) → nginx (ssl_verify_client on) → grpc_pass to the server"
          : "nginx mTLS pair: nginx → HTTP/1.1 over TLS 1.3 (client cert, keep-alive 64) → nginx (ssl_verify_client on) → backend (keep-alive)",
      unavailable: async (ctx) => toolReason(ctx, "nginx"),
      start: (ctx, up) => startNginxPair(ctx, up, protocol),
    },
    ...(protocol === "http1"
      ? [
          {
            name: "haproxy-pair",
            describe:
              "HAProxy mTLS pair: HAProxy → HTTP/1.1 over TLS 1.3 (client cert, http-reuse always) → HAProxy (verify required) → backend (keep-alive)",
            unavailable: async (ctx: BenchContext) => toolReason(ctx, "haproxy"),
            start: (ctx: BenchContext, up: number) => startHaproxyPair(ctx, up),
          },
        ]
      : []),
  ];
}
