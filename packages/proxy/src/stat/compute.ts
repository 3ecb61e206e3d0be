import { type SignalsSnapshot, summarize } from "@mesh/metrics";
import type { EndpointTotals } from "./endpoints.js";
import type { AdminScrape } from "./scrape.js";
import type { TrafficTotals } from "./totals.js";

/** Whether a row's requests were mutually authenticated (`tls="true"`). */
export type MtlsStatus = "yes" | "no" | "partial";

/** Golden signals of one (proxy, direction, authority) over the window. */
export interface TrafficStat {
  readonly direction: string;
  readonly authority: string;
  /** The route, in {@link ProxyStat.routes} rows. */
  readonly route?: string;
  /** Successes / responses in the window; `null` without responses. */
  readonly successRate: number | null;
  /** Requests started per second in the window; `null` without a window. */
  readonly rps: number | null;
  /** Latency percentiles (ms) of the window's responses; `null` without responses. */
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  /** `yes` when every request (of the window, else ever) had `tls="true"`. */
  readonly mtls: MtlsStatus;
  /** Share of the window's (else all) requests with `tls="true"`, 0..1. */
  readonly tlsShare: number | null;
  /** Peer identities seen on the series (`client_id` inbound, `server_id` outbound). */
  readonly clientIds: readonly string[];
  readonly serverIds: readonly string[];
  /** Counts in the window. */
  readonly window: { readonly requests: number; readonly responses: number };
  /** Cumulative counts since the proxy started (or the series appeared). */
  readonly total: {
    readonly requests: number;
    readonly successes: number;
    readonly failures: number;
  };
}

/** Traffic one endpoint of a service received over the window. */
export interface EndpointStat {
  readonly service: string;
  readonly backend: string;
  readonly address: string;
  readonly identity: string | null;
  readonly state: string;
  /** This endpoint's part of its backend's requests in the window (else ever), 0..1. */
  readonly share: number | null;
  readonly rps: number | null;
  /** 1 − failures / requests in the window; `null` without requests. */
  readonly successRate: number | null;
  readonly pending: number;
  readonly cost: number;
  /** Peak-EWMA round-trip estimate, ms. */
  readonly rttMs: number;
  /**
   * The balancer's time-decayed failure rate, 0..1, including its prior pseudo-successes
   * (not a window count like `successRate`): what raises the endpoint's cost.
   */
  readonly failureRate: number;
  readonly total: { readonly requests: number; readonly failures: number };
}

/** Everything `mesh-proxy stat` knows about one proxy. */
export interface ProxyStat {
  /** Display name (`name=` of `--admin`, else the address). */
  readonly proxy: string;
  /** Admin `host:port`. */
  readonly admin: string;
  /** Seconds between the two scrapes; `null` with a single scrape. */
  readonly windowSeconds: number | null;
  /** Set when the admin could not be scraped; the other fields are then empty. */
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly traffic: readonly TrafficStat[];
  /** The same per (direction, authority, route): outbound rows carry the matched route. */
  readonly routes: readonly TrafficStat[];
  readonly endpoints: readonly EndpointStat[];
  /** Set when only `/endpoints` failed. */
  readonly endpointsError: { readonly code: string; readonly message: string } | null;
}

function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

/** Both sides' latency maps on one set of bucket bounds, as @mesh/metrics snapshots. */
function snapshots(
  before: TrafficTotals | undefined,
  after: TrafficTotals,
  beforeMs: number,
  afterMs: number,
): [SignalsSnapshot, SignalsSnapshot] {
  const bounds = [...new Set([...after.latency.keys(), ...(before?.latency.keys() ?? [])])]
    .filter((b) => Number.isFinite(b))
    .sort((a, b) => a - b);
  const counts = (t: TrafficTotals | undefined) => {
    const c = bounds.map((b) => t?.latency.get(b) ?? 0);
    c.push(t?.latency.get(Number.POSITIVE_INFINITY) ?? 0);
    return c;
  };
  const snap = (t: TrafficTotals | undefined, timeMs: number): SignalsSnapshot => ({
    timeMs,
    requests: t?.requests ?? 0,
    successes: t?.successes ?? 0,
    failures: t?.failures ?? 0,
    buckets: bounds,
    counts: counts(t),
  });
  return [snap(before, beforeMs), snap(after, afterMs)];
}

function trafficStat(
  before: AdminScrape | undefined,
  after: AdminScrape,
  t: TrafficTotals,
  key: string,
  map: "traffic" | "routes",
): TrafficStat {
  const prev = before?.[map]?.get(key);
  // Without a previous scrape the "window" is the proxy's whole life so far; rps is unknown.
  const hasWindow = before !== undefined && before.error === undefined;
  const [a, b] = snapshots(prev, t, hasWindow ? before.timeMs : after.timeMs - 1, after.timeMs);
  const s = summarize(a, b);
  const windowRequests = Math.max(0, t.requests - (prev?.requests ?? 0));
  const windowTls = Math.max(0, t.tlsRequests - (prev?.tlsRequests ?? 0));
  const [tls, all] = windowRequests > 0 ? [windowTls, windowRequests] : [t.tlsRequests, t.requests];
  const tlsShare = all > 0 ? tls / all : null;
  return {
    direction: t.direction,
    authority: t.authority,
    ...(t.route === undefined ? {} : { route: t.route }),
    successRate: finite(s.successRate),
    rps: hasWindow ? s.rps : null,
    p50: finite(s.p50),
    p95: finite(s.p95),
    p99: finite(s.p99),
    mtls: tlsShare === null || tlsShare === 0 ? "no" : tlsShare === 1 ? "yes" : "partial",
    tlsShare,
    clientIds: [...t.clientIds].sort(),
    serverIds: [...t.serverIds].sort(),
    window: { requests: windowRequests, responses: s.responses },
    total: { requests: t.requests, successes: t.successes, failures: t.failures },
  };
}

function endpointStats(
  before: AdminScrape | undefined,
  after: AdminScrape,
  seconds: number | null,
): EndpointStat[] {
  const delta = new Map<string, { requests: number; failures: number }>();
  const perBackend = new Map<string, { window: number; total: number }>();
  for (const [key, e] of after.endpoints) {
    const prev: EndpointTotals | undefined = before?.endpoints.get(key);
    // A counter that went down means the endpoint was re-created: count from zero.
    const reset = prev !== undefined && e.requests < prev.requests;
    const requests = prev === undefined || reset ? e.requests : e.requests - prev.requests;
    const failures = prev === undefined || reset ? e.failures : e.failures - prev.failures;
    const d =
      seconds === null ? { requests: e.requests, failures: e.failures } : { requests, failures };
    delta.set(key, d);
    const b = `${e.service}\u0000${e.backend}`;
    const sum = perBackend.get(b) ?? { window: 0, total: 0 };
    sum.window += d.requests;
    sum.total += e.requests;
    perBackend.set(b, sum);
  }
  const out: EndpointStat[] = [];
  for (const [key, e] of after.endpoints) {
    const d = delta.get(key) as { requests: number; failures: number };
    const sum = perBackend.get(`${e.service}\u0000${e.backend}`) as {
      window: number;
      total: number;
    };
    const share =
      sum.window > 0 ? d.requests / sum.window : sum.total > 0 ? e.requests / sum.total : null;
    out.push({
      service: e.service,
      backend: e.backend,
      address: e.address,
      identity: e.identity ?? null,
      state: e.state,
      share,
      rps: seconds === null ? null : d.requests / seconds,
      successRate: d.requests > 0 ? 1 - Math.min(d.failures, d.requests) / d.requests : null,
      pending: e.pending,
      cost: e.cost,
      rttMs: e.rttMs,
      failureRate: e.failureRate,
      total: { requests: e.requests, failures: e.failures },
    });
  }
  out.sort(
    (x, y) =>
      x.service.localeCompare(y.service) ||
      x.backend.localeCompare(y.backend) ||
      x.address.localeCompare(y.address),
  );
  return out;
}

function errorOf(e: { code: string; message: string } | undefined) {
  return e === undefined ? null : { code: e.code, message: e.message };
}

/**
 * Turns two scrapes of the same admin server into per-(direction, authority) golden signals
 * and per-endpoint traffic shares over the window between them (percentiles via
 * @mesh/metrics' `summarize`). With no usable `before`, success rate and latency cover
 * the proxy's whole life and rates are `null`.
 */
export function computeProxyStat(before: AdminScrape | undefined, after: AdminScrape): ProxyStat {
  const base = {
    proxy: after.target.name,
    admin: after.target.address,
    endpointsError: errorOf(after.endpointsError),
  };
  if (after.error !== undefined) {
    return {
      ...base,
      windowSeconds: null,
      error: errorOf(after.error),
      traffic: [],
      routes: [],
      endpoints: [],
    };
  }
  const usable = before !== undefined && before.error === undefined ? before : undefined;
  const seconds =
    usable !== undefined && after.timeMs > usable.timeMs
      ? (after.timeMs - usable.timeMs) / 1000
      : null;
  const prev = seconds === null ? undefined : usable;
  const rows = (map: "traffic" | "routes") =>
    [...(after[map] ?? [])]
      .map(([key, t]) => trafficStat(prev, after, t, key, map))
      .sort(
        (x, y) =>
          x.direction.localeCompare(y.direction) ||
          x.authority.localeCompare(y.authority) ||
          (x.route ?? "").localeCompare(y.route ?? ""),
      );
  const traffic = rows("traffic");
  return {
    ...base,
    windowSeconds: seconds,
    error: null,
    traffic,
    routes: rows("routes"),
    endpoints: endpointStats(prev, after, seconds),
  };
}
