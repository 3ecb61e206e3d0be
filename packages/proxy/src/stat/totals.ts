import type { Sample } from "./prometheus.js";

/**
 * Cumulative HTTP golden-signal counters of one (direction, authority) pair of a proxy,
 * summed over its routes, backends, status codes and identities.
 */
export interface TrafficTotals {
  readonly direction: string;
  readonly authority: string;
  /** The route label, when totals are kept per route (see {@link trafficTotals}). */
  readonly route?: string;
  requests: number;
  successes: number;
  failures: number;
  /** Requests whose series carry `tls="true"` (mutually authenticated). */
  tlsRequests: number;
  /** Non-cumulative latency counts keyed by bucket upper bound (ms; `Infinity` for `+Inf`). */
  readonly latency: Map<number, number>;
  /** `client_id` label values seen (inbound: the verified peer identity). */
  readonly clientIds: Set<string>;
  /** `server_id` label values seen (outbound: the verified endpoint identity). */
  readonly serverIds: Set<string>;
}

/** The key of a (direction, authority) pair in a totals map. */
export function trafficKey(direction: string, authority: string): string {
  return `${direction}\u0000${authority}`;
}

function totalsFor(
  map: Map<string, TrafficTotals>,
  labels: Sample["labels"],
  byRoute: boolean,
): TrafficTotals {
  const direction = labels.direction ?? "";
  const authority = labels.authority ?? "";
  const route = byRoute ? (labels.route ?? "") : undefined;
  const key =
    route === undefined
      ? trafficKey(direction, authority)
      : `${trafficKey(direction, authority)}\u0000${route}`;
  let t = map.get(key);
  if (t === undefined) {
    t = {
      direction,
      authority,
      ...(route === undefined ? {} : { route }),
      requests: 0,
      successes: 0,
      failures: 0,
      tlsRequests: 0,
      latency: new Map(),
      clientIds: new Set(),
      serverIds: new Set(),
    };
    map.set(key, t);
  }
  if (labels.client_id) t.clientIds.add(labels.client_id);
  if (labels.server_id) t.serverIds.add(labels.server_id);
  return t;
}

function seriesKey(labels: Sample["labels"]): string {
  let key = "";
  for (const name of Object.keys(labels).sort()) {
    if (name !== "le") key += `${name}=${labels[name]}\u0000`;
  }
  return key;
}

/**
 * Sums the proxy's `request_total`, `response_total` and `response_latency_ms` samples
 * per (direction, authority), or per (direction, authority, route) with `byRoute`. Histogram buckets are turned from cumulative (`le`) into
 * per-bucket counts series by series before they are added up, so series with different
 * label sets (routes, status codes) combine correctly.
 */
export function trafficTotals(
  samples: readonly Sample[],
  byRoute = false,
): Map<string, TrafficTotals> {
  const out = new Map<string, TrafficTotals>();
  const histograms = new Map<string, { totals: TrafficTotals; buckets: [number, number][] }>();
  for (const s of samples) {
    switch (s.name) {
      case "request_total": {
        const t = totalsFor(out, s.labels, byRoute);
        t.requests += s.value;
        if (s.labels.tls === "true") t.tlsRequests += s.value;
        break;
      }
      case "response_total": {
        const t = totalsFor(out, s.labels, byRoute);
        if (s.labels.classification === "success") t.successes += s.value;
        else t.failures += s.value;
        break;
      }
      case "response_latency_ms_bucket": {
        const le =
          s.labels.le === undefined ? Number.NaN : Number(s.labels.le.replace("Inf", "Infinity"));
        if (Number.isNaN(le)) break;
        const key = seriesKey(s.labels);
        let h = histograms.get(key);
        if (h === undefined) {
          h = { totals: totalsFor(out, s.labels, byRoute), buckets: [] };
          histograms.set(key, h);
        }
        h.buckets.push([le, s.value]);
        break;
      }
      default:
        break;
    }
  }
  for (const { totals, buckets } of histograms.values()) {
    buckets.sort((a, b) => a[0] - b[0]);
    let below = 0;
    for (const [le, cumulative] of buckets) {
      const count = Math.max(0, cumulative - below);
      below = Math.max(below, cumulative);
      totals.latency.set(le, (totals.latency.get(le) ?? 0) + count);
    }
  }
  return out;
}
