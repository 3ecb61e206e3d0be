/**
 * Closed-loop maximum throughput with undici: `concurrency` loops each send the next
 * request as soon as the previous one completes. The fallback when `wrk` is not installed.
 */
import { microsHistogram, type Percentiles, percentilesMs } from "./open-loop.ts";

/** What a closed-loop run produced. */
export interface ClosedLoopResult {
  tool: "undici-closed-loop";
  requests: number;
  errors: number;
  non2xx: number;
  elapsedMs: number;
  rps: number;
  latencyMs: Percentiles;
}

/** Runs `concurrency` back-to-back request loops for `durationMs`. */
export async function runClosedLoop(options: {
  concurrency: number;
  durationMs: number;
  send: (index: number, signal: AbortSignal) => Promise<number>;
}): Promise<ClosedLoopResult> {
  const histogram = microsHistogram();
  const abort = new AbortController();
  let requests = 0;
  let errors = 0;
  let non2xx = 0;
  let index = 0;
  const start = performance.now();
  const deadline = start + options.durationMs;
  const loop = async () => {
    // Bounded by time; the count bound guards against a send that resolves synchronously.
    for (let n = 0; n < 100_000_000 && performance.now() < deadline; n++) {
      const t = performance.now();
      try {
        const status = await options.send(index++, abort.signal);
        if (status < 200 || status >= 300) non2xx++;
        requests++;
        histogram.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const elapsedMs = performance.now() - start;
  abort.abort();
  return {
    tool: "undici-closed-loop",
    requests,
    errors,
    non2xx,
    elapsedMs: Math.round(elapsedMs),
    rps: Math.round((requests / elapsedMs) * 1000),
    latencyMs: percentilesMs(histogram),
  };
}
