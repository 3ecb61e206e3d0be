/**
 * Peer: the Node floor — a node:http server that passes each request through an undici
 * `Pool` with `pool.stream()`, writing the upstream response straight into the client
 * response. The one pass-through of the repository: the harness, the proxy's perf scripts
 * (packages/proxy/scripts/perf) and the metrics cost script (packages/metrics/bench) all
 * run this file. Plain JavaScript so its RSS carries no TypeScript-stripping cost.
 *
 * Usage: `node undici-stream.mjs <port|0> <upstream-origin> [options]`; prints `READY <port>`.
 * - `--metrics[=MODE]`: @mesh/metrics on this proxy. `on` (the default): the pool composed
 *   with the `metrics()` interceptor and the server instrumented, recording into
 *   GoldenSignals rendered every 10 s as a scrape would; `noop`: the same hooks over
 *   NOOP_SIGNALS; `noop-client` / `noop-server`: one side only; `compose-only`: a
 *   pass-through interceptor (undici's `compose()` cost, no @mesh/metrics code).
 *   `MESH_METRICS_ENTRY=<path>` loads another build (before/after runs).
 * - `--trace`: tracing at its default instead of `trace: false`.
 * - `--fixed-young-gen`: `--semi-space-growth-factor=1` applied at start, as mesh-proxy's
 *   launcher does: the young generation stays at its initial size instead of a size V8
 *   picks during warm-up, so variants compared with each other get the same heap sizing.
 * - `--undici=<specifier>`: load another undici (e.g. `undici7`, which still runs on Node 20).
 * - `--gc`: GC accounting; SIGUSR2 resets it (after warm-up), SIGTERM prints `GC <count> <ms>`.
 *   Off by default: a 'gc' PerformanceObserver is not free and would tilt a comparison.
 */
import { createServer } from "node:http";
import { setFlagsFromString } from "node:v8";
import { endToEnd } from "./end-to-end.mjs";

const option = (name) => {
  const a = process.argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  return a === undefined ? undefined : (a.split("=")[1] ?? "");
};

// Applied at run time like mesh-proxy's launcher (on the command line V8 would still grow
// the young generation while modules load).
if (option("fixed-young-gen") !== undefined) setFlagsFromString("--semi-space-growth-factor=1");

const { Pool } = await import(option("undici") || "undici");
const port = Number(process.argv[2]);
const upstream = process.argv[3];
const metricsMode = option("metrics") === "" ? "on" : option("metrics");

const pool = new Pool(upstream, { connections: 64, pipelining: 1 });
let dispatcher = pool;
let instrument = null;
if (metricsMode === "compose-only") {
  dispatcher = pool.compose((dispatch) => (o, h) => dispatch(o, h));
} else if (metricsMode !== undefined) {
  const m = await import(process.env.MESH_METRICS_ENTRY ?? "@mesh/metrics");
  const recording = metricsMode === "on";
  const signals = recording ? new m.GoldenSignals() : m.NOOP_SIGNALS;
  if (recording) setInterval(() => m.renderPrometheus(signals.registry), 10_000).unref();
  const trace = option("trace") === undefined ? { trace: false } : {};
  if (metricsMode !== "noop-server") {
    dispatcher = pool.compose(m.metrics({ signals, direction: "outbound", ...trace }));
  }
  if (metricsMode !== "noop-client") {
    instrument = (server) =>
      m.instrumentServer(server, { signals, direction: "inbound", ...trace });
  }
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
server.listen(port, "127.0.0.1", () => process.stdout.write(`READY ${server.address().port}\n`));

if (option("gc") !== undefined) {
  const { PerformanceObserver } = await import("node:perf_hooks");
  const gc = { count: 0, ms: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.ms += e.duration;
    }
  }).observe({ entryTypes: ["gc"] });
  process.on("SIGUSR2", () => {
    gc.count = 0;
    gc.ms = 0;
  });
  process.once("SIGTERM", () => {
    process.stdout.write(`GC ${gc.count} ${gc.ms.toFixed(1)}\n`, () => process.exit(0));
  });
} else process.once("SIGTERM", () => process.exit(0));
