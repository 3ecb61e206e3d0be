import http from "node:http";
import { type EndpointTotals, endpointTotals } from "./endpoints.js";
import { StatError } from "./errors.js";
import { parsePrometheusText } from "./prometheus.js";
import type { AdminTarget } from "./target.js";
import { type TrafficTotals, trafficTotals } from "./totals.js";

/** One scrape of one admin server: its cumulative counters, or why there are none. */
export interface AdminScrape {
  readonly target: AdminTarget;
  /** When `/metrics` was read (ms, from the scrape's clock). */
  readonly timeMs: number;
  /** Per (direction, authority); empty when the scrape failed. */
  readonly traffic: Map<string, TrafficTotals>;
  /** Per (direction, authority, route); empty or absent when the scrape failed. */
  readonly routes?: Map<string, TrafficTotals>;
  /** Per (service, backend, address); empty when `/endpoints` failed or has none. */
  readonly endpoints: Map<string, EndpointTotals>;
  /** Set when `/metrics` could not be read: the proxy's row shows it. */
  readonly error?: StatError;
  /** Set when only `/endpoints` could not be read. */
  readonly endpointsError?: StatError;
}

/** Options of {@link scrapeAdmin}. */
export interface ScrapeOptions {
  /** Per-request timeout, ms. Default 2000. */
  timeoutMs?: number;
  /** Time source (ms). Default `performance.now()`. */
  clock?: { now(): number };
}

function get(address: string, path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const fail = (message: string, cause?: unknown) =>
      reject(
        new StatError("MESH_PROXY_STAT_SCRAPE_FAILED", `GET http://${address}${path}: ${message}`, {
          cause,
        }),
      );
    const req = http.get(
      `http://${address}${path}`,
      { agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => fail(err.message, err));
        res.on("end", () => {
          if (res.statusCode !== 200) fail(`status ${res.statusCode}`);
          else resolve(Buffer.concat(chunks).toString("utf8"));
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on("error", (err: NodeJS.ErrnoException) => fail(err.code ?? err.message, err));
  });
}

/**
 * Reads an admin server's `/metrics` and `/endpoints` concurrently and turns them into
 * cumulative totals. Never rejects: failures are carried in `error` / `endpointsError`.
 */
export async function scrapeAdmin(
  target: AdminTarget,
  options: ScrapeOptions = {},
): Promise<AdminScrape> {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const clock = options.clock ?? performance;
  const [metrics, endpoints] = await Promise.allSettled([
    get(target.address, "/metrics", timeoutMs),
    get(target.address, "/endpoints", timeoutMs),
  ]);
  const timeMs = clock.now();
  const empty = { target, timeMs, traffic: new Map(), routes: new Map(), endpoints: new Map() };
  if (metrics.status === "rejected") return { ...empty, error: asStatError(metrics.reason) };
  let traffic: Map<string, TrafficTotals>;
  let routes: Map<string, TrafficTotals>;
  try {
    const samples = parsePrometheusText(metrics.value);
    traffic = trafficTotals(samples);
    routes = trafficTotals(samples, true);
  } catch (err) {
    return { ...empty, error: asStatError(err) };
  }
  if (endpoints.status === "rejected") {
    return { ...empty, traffic, routes, endpointsError: asStatError(endpoints.reason) };
  }
  try {
    return { ...empty, traffic, routes, endpoints: endpointTotals(JSON.parse(endpoints.value)) };
  } catch (err) {
    return { ...empty, traffic, routes, endpointsError: asStatError(err) };
  }
}

function asStatError(err: unknown): StatError {
  if (err instanceof StatError) return err;
  return new StatError("MESH_PROXY_STAT_BAD_RESPONSE", (err as Error).message, { cause: err });
}
