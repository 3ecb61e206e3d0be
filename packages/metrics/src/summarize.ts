import type { CounterFamily, HistogramFamily } from "./registry/family.js";
import type { Labels } from "./registry/labels.js";
import type { Registry } from "./registry/registry.js";

/** Totals of the HTTP golden signals at one instant, from {@link snapshot}. */
export interface SignalsSnapshot {
  /** When it was taken (ms, from the clock given to `snapshot`). */
  readonly timeMs: number;
  readonly requests: number;
  readonly successes: number;
  readonly failures: number;
  /** Finite latency bucket bounds (ms). */
  readonly buckets: readonly number[];
  /** Non-cumulative latency counts per bucket; last slot is `+Inf`. */
  readonly counts: readonly number[];
}

/** Golden signals over a window, from {@link summarize}. */
export interface Summary {
  /** Window length in seconds. */
  readonly seconds: number;
  /** Responses ended in the window. */
  readonly responses: number;
  /** successes / responses, or `NaN` without responses. */
  readonly successRate: number;
  /** Requests started per second. */
  readonly rps: number;
  /** Latency percentiles in ms, interpolated within buckets like `histogram_quantile`. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

/**
 * Sums `request_total`, `response_total` and `response_latency_ms` of a registry holding
 * `GoldenSignals` families, over the series whose labels pass `filter`
 * (e.g. `l => l.authority === "web:80"`).
 */
export function snapshot(
  registry: Registry,
  timeMs: number,
  filter: (labels: Labels) => boolean = () => true,
): SignalsSnapshot {
  registry.collect();
  const req = registry.family("request_total") as CounterFamily | undefined;
  const res = registry.family("response_total") as CounterFamily | undefined;
  const lat = registry.family("response_latency_ms") as HistogramFamily | undefined;
  if (req === undefined || res === undefined || lat === undefined) {
    throw new TypeError(
      "registry: expected a registry with GoldenSignals families, got one without",
    );
  }
  let requests = 0;
  let successes = 0;
  let failures = 0;
  for (const s of req.series()) if (filter(s.labels)) requests += s.value;
  for (const s of res.series()) {
    if (!filter(s.labels)) continue;
    if (s.labels.classification === "success") successes += s.value;
    else failures += s.value;
  }
  const counts = new Array<number>(lat.buckets.length + 1).fill(0);
  for (const s of lat.series()) {
    if (!filter(s.labels)) continue;
    for (let i = 0; i < counts.length; i++) counts[i]! += s.counts[i]!;
  }
  return { timeMs, requests, successes, failures, buckets: lat.buckets, counts };
}

/** The `q` quantile (0..1) of bucketed counts, linear within the bucket. */
export function quantile(q: number, buckets: readonly number[], counts: readonly number[]): number {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && seen + c >= rank) {
      if (i === buckets.length) return buckets[buckets.length - 1]!; // +Inf: the highest bound
      const lower = i === 0 ? 0 : buckets[i - 1]!;
      return lower + (buckets[i]! - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return buckets[buckets.length - 1]!;
}

/**
 * Success rate, requests per second and p50/p95/p99 latency over the window between two
 * snapshots. Series that expired in between can make a delta negative; such deltas
 * count as 0.
 */
export function summarize(before: SignalsSnapshot, after: SignalsSnapshot): Summary {
  const seconds = (after.timeMs - before.timeMs) / 1000;
  if (!(seconds > 0)) {
    throw new RangeError(`after.timeMs: expected a time after before.timeMs, got ${after.timeMs}`);
  }
  const d = (a: number, b: number) => Math.max(0, a - b);
  const successes = d(after.successes, before.successes);
  const responses = successes + d(after.failures, before.failures);
  const counts = after.counts.map((c, i) => d(c, before.counts[i] ?? 0));
  return {
    seconds,
    responses,
    successRate: responses === 0 ? Number.NaN : successes / responses,
    rps: d(after.requests, before.requests) / seconds,
    p50: quantile(0.5, after.buckets, counts),
    p95: quantile(0.95, after.buckets, counts),
    p99: quantile(0.99, after.buckets, counts),
  };
}
