// The proxy of bench/proxy-cost.mjs: node:http server + undici Pool.stream pass-through, the
// same shape as the repository's bench peer (bench/src/peers/undici-stream.mjs).
// Usage: node proxy.mjs <upstream-origin> <off|noop|on|noop-server|noop-client|compose-only> [--trace] [--gc] — prints `READY <port>`.
// METRICS_ENTRY=<path> loads another build (for before/after runs).
// --trace leaves tracing at its default instead of passing `trace: false`.
import { createServer } from "node:http";
import { Pool } from "undici";

const upstream = process.argv[2];
const variant = process.argv[3] ?? "off";
const traceDefault = process.argv.includes("--trace");

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
]);
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
// Diagnostic variants: noop-server / noop-client install one side only; compose-only
// composes a pass-through interceptor (undici's compose() cost, no @mesh/metrics code).
if (variant === "compose-only") dispatcher = pool.compose((dispatch) => (o, h) => dispatch(o, h));
else if (variant !== "off") {
  const m = await import(process.env.METRICS_ENTRY ?? "../dist/index.js");
  const mode = variant.split("-")[0];
  const signals = mode === "on" ? new m.GoldenSignals() : m.NOOP_SIGNALS;
  if (mode === "on") setInterval(() => m.renderPrometheus(signals.registry), 10_000).unref();
  const trace = traceDefault ? {} : { trace: false };
  if (!variant.endsWith("-server")) {
    dispatcher = pool.compose(m.metrics({ signals, direction: "outbound", ...trace }));
  }
  if (!variant.endsWith("-client")) {
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
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY ${server.address().port}\n`));
// --gc: GC accounting for the driver (SIGUSR2 resets it after warm-up, SIGTERM prints it).
// Off by default: a 'gc' PerformanceObserver is not free and would tilt the comparison.
if (process.argv.includes("--gc")) {
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
