/**
 * Peer: an app whose latency rises with concurrency, for the `adaptive-concurrency`
 * scenario. Up to `capacity` requests in flight each take `baseMs`; beyond that the app is
 * processor-shared: a request admitted with `n` in flight takes `baseMs × n / capacity`
 * (its capacity is `capacity / baseMs` requests per ms, whatever the load). Timers, not
 * CPU, so the model is the same on any machine and costs the shared CPU nothing.
 *
 * Usage: `node concurrency-app.mjs <port|0> <capacity> <baseMs> [--limit]`; prints
 * `READY <port>`. `--limit` wraps the handler in @mesh/limit's `limitRequests` with a
 * `GradientLimiter` at its defaults (503 beyond the limit). `GET /__stats` (not counted)
 * answers the server-side view as JSON: admitted, rejected, completed, p50/p99 of admitted
 * requests' time in the app, the largest number in flight and the limiter's last limit.
 * Plain JavaScript, like the other Node peers.
 */
import { createServer } from "node:http";

const [portArg, capacityArg, baseArg] = process.argv.slice(2);
const capacity = Number(capacityArg);
const baseMs = Number(baseArg);
const limited = process.argv.includes("--limit");

let inFlight = 0;
let maxInFlight = 0;
let completed = 0;
let rejected = 0;
/** Time in the app of completed requests, ms (a few hundred thousand at most per run). */
const times = [];

function app(_req, res) {
  inFlight++;
  if (inFlight > maxInFlight) maxInFlight = inFlight;
  const start = performance.now();
  const ms = baseMs * Math.max(1, inFlight / capacity);
  setTimeout(() => {
    inFlight--;
    completed++;
    times.push(performance.now() - start);
    res.end("ok");
  }, ms);
}

let handler = app;
let limiter;
if (limited) {
  const { GradientLimiter, limitRequests } = await import("@mesh/limit");
  limiter = new GradientLimiter({ name: "app" });
  const wrapped = limitRequests(app, { concurrency: limiter });
  handler = (req, res) => {
    wrapped(req, res);
    // limitRequests answers a refused request synchronously; the app never sends 503.
    if (res.statusCode === 503) rejected++;
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

const server = createServer((req, res) => {
  if (req.url === "/__stats") {
    const sorted = Float64Array.from(times).sort();
    res.setHeader("content-type", "application/json");
    res.end(
      JSON.stringify({
        completed,
        rejected,
        maxInFlight,
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        limit: limiter?.limit ?? null,
        minRttMs: limiter === undefined || Number.isNaN(limiter.minRtt) ? null : limiter.minRtt,
      }),
    );
    return;
  }
  if (req.url === "/__reset") {
    completed = 0;
    rejected = 0;
    maxInFlight = inFlight;
    times.length = 0;
    res.end();
    return;
  }
  handler(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portArg), "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
