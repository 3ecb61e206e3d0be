import type { ProxyStat } from "./compute.js";

/**
 * Text columns separated by two spaces, `rightAligned` ones padded on the left. A row with
 * fewer cells than the header lets its last cell run across the remaining columns (used
 * for error messages) and does not widen them.
 */
export function renderColumns(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number> = new Set(),
): string {
  const full = rows.filter((r) => r.length >= header.length);
  const widths = header.map((h, i) => Math.max(h.length, ...full.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => {
        const w = widths[i] as number;
        if (i === cells.length - 1 && (cells.length < header.length || !rightAligned.has(i))) {
          return c;
        }
        return rightAligned.has(i) ? c.padStart(w) : c.padEnd(w);
      })
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** `99.50%`, or `-` when unknown. */
export function formatPercent(v: number | null): string {
  return v === null ? "-" : `${(v * 100).toFixed(2)}%`;
}

/** `12.3rps`, or `-` when unknown. */
export function formatRps(v: number | null): string {
  return v === null ? "-" : `${v.toFixed(1)}rps`;
}

/** `4.2ms` below 10 ms, `37ms` above, or `-` when unknown. */
export function formatMs(v: number | null): string {
  if (v === null) return "-";
  return v < 10 ? `${v.toFixed(1)}ms` : `${Math.round(v)}ms`;
}

const TRAFFIC_HEADER = [
  "PROXY",
  "DIRECTION",
  "AUTHORITY",
  "MTLS",
  "SUCCESS",
  "RPS",
  "LATENCY_P50",
  "LATENCY_P95",
  "LATENCY_P99",
];
const ENDPOINT_HEADER = [
  "PROXY",
  "SERVICE",
  "ENDPOINT",
  "IDENTITY",
  "STATE",
  "SHARE",
  "RPS",
  "SUCCESS",
  "FAILURE_RATE",
  "EWMA_RTT",
  "PENDING",
];

/**
 * Renders stats as `linkerd viz stat` does: one aligned row per (proxy, direction,
 * authority), an error row for each proxy that could not be scraped, then one row per
 * balanced endpoint with its share of the backend's traffic and the balancer's view of it
 * (decayed failure rate, EWMA round trip, pending requests).
 */
export function renderStatTable(stats: readonly ProxyStat[]): string {
  const traffic: string[][] = [];
  const endpoints: string[][] = [];
  for (const p of stats) {
    if (p.error !== null) {
      traffic.push([p.proxy, `error: ${p.error.message}`]);
      continue;
    }
    if (p.traffic.length === 0) traffic.push([p.proxy, "(no requests yet)"]);
    for (const t of p.traffic) {
      traffic.push([
        p.proxy,
        t.direction,
        t.authority,
        t.mtls === "partial" ? `${Math.round((t.tlsShare ?? 0) * 100)}%` : t.mtls,
        formatPercent(t.successRate),
        formatRps(t.rps),
        formatMs(t.p50),
        formatMs(t.p95),
        formatMs(t.p99),
      ]);
    }
    for (const e of p.endpoints) {
      endpoints.push([
        p.proxy,
        e.backend === e.service ? e.service : `${e.service}/${e.backend}`,
        e.address,
        e.identity ?? "-",
        e.state,
        e.share === null ? "-" : `${(e.share * 100).toFixed(1)}%`,
        formatRps(e.rps),
        formatPercent(e.successRate),
        formatPercent(e.failureRate),
        formatMs(e.rttMs),
        String(e.pending),
      ]);
    }
    if (p.endpointsError !== null) {
      endpoints.push([p.proxy, `error: ${p.endpointsError.message}`]);
    }
  }
  const out = [renderColumns(TRAFFIC_HEADER, traffic, new Set([4, 5, 6, 7, 8]))];
  if (endpoints.length > 0) {
    out.push("", renderColumns(ENDPOINT_HEADER, endpoints, new Set([5, 6, 7, 8, 9, 10])));
  }
  return `${out.join("\n")}\n`;
}
