/**
 * Open-loop constant-rate load with coordinated-omission correction (the wrk2 method):
 * request `i` is *due* at `t0 + i / rate`, and its latency is measured from that intended
 * time, not from when it was actually sent. A stalled server therefore shows up as the
 * queueing delay every user behind it would see, instead of silently lowering the rate.
 */
import * as hdr from "hdr-histogram-js";

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Per-bucket counts over the run (by intended send time). */
export interface Timeline {
  bucketMs: number;
  offered: number[];
  ok: number[];
  failed: number[];
}

/** What one open-loop run produced. */
export interface OpenLoopResult {
  rate: number;
  offered: number;
  completed: number;
  /** Responses with a 2xx status. */
  ok: number;
  /** Completed with a non-2xx status. */
  non2xx: number;
  /** Failed without a response (connection errors, thrown by the client). */
  errors: number;
  /** Still in flight when the drain timeout expired. */
  timedOut: number;
  statusCounts: Record<string, number>;
  errorCodes: Record<string, number>;
  /** Wall time from the first due request to the last completion, ms. */
  elapsedMs: number;
  achievedRps: number;
  /** CO-corrected latency (from intended send time) of completed requests. */
  latencyMs: Percentiles;
  /** Latency from the actual send time (uncorrected), for comparison. */
  serviceMs: Percentiles;
  /** Largest delay between a request's due time and its actual send, ms. */
  maxSendLagMs: number;
  startedAtEpochMs: number;
  timeline: Timeline;
}

/** Requests that did not succeed: non-2xx answers, errors and those still in flight at the end. */
export function failedOf(r: Pick<OpenLoopResult, "non2xx" | "errors" | "timedOut">): number {
  return r.non2xx + r.errors + r.timedOut;
}

/** Options for {@link runOpenLoop}. */
export interface OpenLoopOptions {
  /** Requests per second. */
  rate: number;
  /** How long to offer load, ms. */
  durationMs: number;
  /** How long to wait for in-flight requests after the last send, ms. */
  drainTimeoutMs: number;
  /** Sends request `index`; resolves with the HTTP status; rejects on transport failure. */
  send: (index: number, signal: AbortSignal) => Promise<number>;
  /** Timeline bucket width, ms (default 100). */
  bucketMs?: number;
}

/** Builds an HDR histogram of microseconds (1 µs .. 10 min, 3 significant digits). */
export function microsHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });
}

/** Reads p50/p90/p99/p99.9/max/mean (ms) from a histogram of microseconds. */
export function percentilesMs(h: hdr.Histogram): Percentiles {
  const ms = (us: number) => Math.round(us) / 1000;
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** Runs constant-rate load and resolves once every request completed or the drain expired. */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const { rate, durationMs, drainTimeoutMs, send } = options;
  if (!(rate > 0)) throw new RangeError(`rate: expected a positive number, got ${rate}`);
  if (!(durationMs > 0))
    throw new RangeError(`durationMs: expected a positive number, got ${durationMs}`);
  const bucketMs = options.bucketMs ?? 100;
  const total = Math.max(1, Math.floor((rate * durationMs) / 1000));
  const intervalMs = 1000 / rate;
  const buckets = Math.ceil(durationMs / bucketMs) + 1;
  const timeline: Timeline = {
    bucketMs,
    offered: new Array(buckets).fill(0),
    ok: new Array(buckets).fill(0),
    failed: new Array(buckets).fill(0),
  };
  const corrected = microsHistogram();
  const service = microsHistogram();
  const statusCounts: Record<string, number> = {};
  const errorCodes: Record<string, number> = {};
  const abort = new AbortController();
  let completed = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let inFlight = 0;
  let maxSendLagMs = 0;
  let lastCompletion = 0;
  let onIdle: (() => void) | null = null;

  const startedAtEpochMs = Date.now();
  const t0 = performance.now();

  const fire = (index: number) => {
    const intended = t0 + index * intervalMs;
    const bucket = Math.min(buckets - 1, Math.floor((index * intervalMs) / bucketMs));
    timeline.offered[bucket]!++;
    const sentAt = performance.now();
    if (sentAt - intended > maxSendLagMs) maxSendLagMs = sentAt - intended;
    inFlight++;
    let promise: Promise<number>;
    try {
      promise = send(index, abort.signal);
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (status) => {
        const end = performance.now();
        lastCompletion = end;
        completed++;
        corrected.recordValue(Math.max(1, Math.round((end - intended) * 1000)));
        service.recordValue(Math.max(1, Math.round((end - sentAt) * 1000)));
        statusCounts[status] = (statusCounts[status] ?? 0) + 1;
        if (status >= 200 && status < 300) {
          ok++;
          timeline.ok[bucket]!++;
        } else {
          non2xx++;
          timeline.failed[bucket]!++;
        }
        settle();
      },
      (error: unknown) => {
        lastCompletion = performance.now();
        if (abort.signal.aborted) return settle();
        errors++;
        timeline.failed[bucket]!++;
        const code = errorCode(error);
        errorCodes[code] = (errorCodes[code] ?? 0) + 1;
        settle();
      },
    );
  };
  const settle = () => {
    inFlight--;
    if (inFlight === 0 && onIdle) onIdle();
  };

  await new Promise<void>((resolve) => {
    let next = 0;
    const tick = () => {
      const elapsed = performance.now() - t0;
      const due = Math.min(total, Math.floor(elapsed / intervalMs) + 1);
      while (next < due) fire(next++);
      if (next >= total) return resolve();
      const wait = t0 + next * intervalMs - performance.now();
      setTimeout(tick, Math.max(0, wait));
    };
    tick();
  });

  if (inFlight > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, drainTimeoutMs);
      onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  const timedOut = inFlight;
  abort.abort();
  const elapsedMs =
    (timedOut > 0 || lastCompletion === 0 ? performance.now() : lastCompletion) - t0;
  return {
    rate,
    offered: total,
    completed,
    ok,
    non2xx,
    errors,
    timedOut,
    statusCounts,
    errorCodes,
    elapsedMs: Math.round(elapsedMs),
    achievedRps: Math.round((completed / Math.max(1, elapsedMs)) * 1000),
    latencyMs: percentilesMs(corrected),
    serviceMs: percentilesMs(service),
    maxSendLagMs: Math.round(maxSendLagMs * 1000) / 1000,
    startedAtEpochMs,
    timeline,
  };
}

/** A stable short code for an error (undici's `code`, a Node errno, or the class name). */
export function errorCode(error: unknown): string {
  if (error && typeof error === "object") {
    const e = error as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === "string") return e.code;
    if (e.cause) return errorCode(e.cause);
    if (typeof e.name === "string") return e.name;
  }
  return "unknown";
}
