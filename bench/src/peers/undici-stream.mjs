/**
 * Peer: the Node floor — a node:http server that passes each request through an undici
 * `Pool` with `pool.stream()`, writing the upstream response straight into the client
 * response. With `--metrics` the pool is composed with @mesh/metrics' interceptor and the
 * server instrumented (recording into GoldenSignals, rendered every 10 s as a scrape
 * would); `--metrics=noop` installs the same hooks over NOOP_SIGNALS. Plain JavaScript so
 * its RSS carries no TypeScript-stripping cost.
 * `--fixed-young-gen` applies `--semi-space-growth-factor=1` at start, as mesh-proxy's
 * launcher does: the young generation stays at its initial size instead of a size V8 picks
 * during warm-up, so variants compared with each other get the same heap sizing.
 * Usage: `node undici-stream.mjs <port> <upstream-origin> [--metrics[=noop]] [--fixed-young-gen]`;
 * prints `READY <port>`.
 */
import { createServer } from "node:http";
import { setFlagsFromString } from "node:v8";
import { Pool } from "undici";

// Applied at run time like mesh-proxy's launcher (on the command line V8 would still grow
// the young generation while modules load).
if (process.argv.includes("--fixed-young-gen")) setFlagsFromString("--semi-space-growth-factor=1");

const port = Number(process.argv[2]);
const upstream = process.argv[3];
const metricsArg = process.argv.find((a) => a.startsWith("--metrics"));
const metricsMode =
  metricsArg === undefined ? null : metricsArg === "--metrics=noop" ? "noop" : "on";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
]);

/** Copies end-to-end headers (drops hop-by-hop ones). */
function endToEnd(headers) {
  const out = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

const pool = new Pool(upstream, { connections: 64, pipelining: 1 });
let dispatcher = pool;
let instrument = null;
if (metricsMode) {
  const m = await import("@mesh/metrics");
  const signals = metricsMode === "on" ? new m.GoldenSignals() : m.NOOP_SIGNALS;
  if (metricsMode === "on") setInterval(() => m.renderPrometheus(signals.registry), 10_000).unref();
  dispatcher = pool.compose(m.metrics({ signals, direction: "outbound", trace: false }));
  instrument = (server) =>
    m.instrumentServer(server, { signals, direction: "inbound", trace: false });
}

const server = createServer((req, res) => {
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  dispatcher.stream(
    {
      path: req.url ?? "/",
      method: req.method ?? "GET",
      headers: endToEnd(req.headers),
      body: hasBody ? req : null,
    },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, endToEnd(headers));
      return res;
    },
    (err) => {
      if (err) {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      }
    },
  );
});
instrument?.(server);
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => process.stdout.write(`READY ${port}\n`));
process.once("SIGTERM", () => process.exit(0));
