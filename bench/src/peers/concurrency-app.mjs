/**
 * Peer: an app whose latency rises with concurrency, for the `adaptive-concurrency`
 * scenario. Up to `capacity` requests in flight each take `baseMs`; beyond that the app is
 * processor-shared: a request admitted with `n` in flight takes `baseMs × n / capacity`
 * (its capacity is `capacity / baseMs` requests per ms, whatever the load). Timers, not
 * CPU, so the model is the same on any machine and costs the shared CPU nothing.
 *
 * Usage: `node concurrency-app.mjs <port|0> <capacity> <baseMs> [--limit]`; prints
 * `READY <port>`. `--limit` wraps the handler in @mesh/limit's `limitRequests` with a
 * `GradientLimiter` at its defaults (503 beyond the limit). `GET /__stats?since=<epoch ms>`
 * (not counted) answers the server-side view of the requests that arrived since then as
 * JSON: completed, rejected, p50/p99 of admitted requests' time in the app, the largest
 * number in flight at an arrival, and the limiter's current limit; with `&until=<epoch ms>` only
 * arrivals before then, and `byClient`: those arrivals counted by their `mesh-client-id`
 * (the verified client identity a mesh-proxy inbound adds).
 * Plain JavaScript, like the other Node peers.
 */
import { createServer } from "node:http";

const [portArg, capacityArg, baseArg] = process.argv.slice(2);
const capacity = Number(capacityArg);
const baseMs = Number(baseArg);
const limited = process.argv.includes("--limit");

let inFlight = 0;
// Per admitted request: arrival (ms since epoch), time in the app (ms), in flight at arrival.
// Columns rather than objects; a few tens of thousands per run.
const arrivals = [];
const durations = [];
const concurrency = [];
/** The `mesh-client-id` of each admitted request ("" without one). */
const clients = [];
/** Arrival times of refused requests. */
const refusals = [];
const epochNow = () => performance.timeOrigin + performance.now();

function app(req, res) {
  inFlight++;
  const start = performance.now();
  const arrivedAt = performance.timeOrigin + start;
  const admittedWith = inFlight;
  const client = req.headers["mesh-client-id"] ?? "";
  const ms = baseMs * Math.max(1, inFlight / capacity);
  setTimeout(() => {
    inFlight--;
    arrivals.push(arrivedAt);
    durations.push(performance.now() - start);
    concurrency.push(admittedWith);
    clients.push(client);
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
    if (res.statusCode === 503) refusals.push(epochNow());
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

/** The app's view of the requests that arrived at or after `since` (ms since epoch). */
function stats(since, until) {
  const times = [];
  const byClient = {};
  let maxInFlight = 0;
  for (let i = 0; i < arrivals.length; i++) {
    if (arrivals[i] < since || arrivals[i] >= until) continue;
    byClient[clients[i]] = (byClient[clients[i]] ?? 0) + 1;
    times.push(durations[i]);
    if (concurrency[i] > maxInFlight) maxInFlight = concurrency[i];
  }
  const sorted = Float64Array.from(times).sort();
  return {
    completed: times.length,
    rejected: refusals.filter((t) => t >= since && t < until).length,
    byClient,
    maxInFlight,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    limit: limiter?.limit ?? null,
    minRttMs: limiter === undefined || Number.isNaN(limiter.minRtt) ? null : limiter.minRtt,
  };
}

const server = createServer((req, res) => {
  if (req.url?.startsWith("/__stats")) {
    const query = new URL(req.url, "http://app").searchParams;
    const since = Number(query.get("since") ?? 0);
    const until = Number(query.get("until") ?? Number.POSITIVE_INFINITY);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(stats(since, until)));
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
