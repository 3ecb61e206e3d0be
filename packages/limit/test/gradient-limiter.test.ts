import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GradientLimiter, nextLimit } from "../src/index.js";
import { ManualClock, seeded } from "./support.js";

/** Completion times, earliest first (a binary heap of [time, start]). */
class Completions {
  readonly #heap: Array<[number, number]> = [];
  get size(): number {
    return this.#heap.length;
  }
  peek(): number {
    return this.#heap.length === 0
      ? Number.POSITIVE_INFINITY
      : (this.#heap[0] as [number, number])[0];
  }
  push(item: [number, number]): void {
    const h = this.#heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((h[p] as [number, number])[0] <= item[0]) break;
      h[i] = h[p] as [number, number];
      i = p;
    }
    h[i] = item;
  }
  pop(): [number, number] {
    const h = this.#heap;
    const top = h[0] as [number, number];
    const last = h.pop() as [number, number];
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c =
          r < h.length && (h[r] as [number, number])[0] < (h[l] as [number, number])[0] ? r : l;
        if ((h[c] as [number, number])[0] >= last[0]) break;
        h[i] = h[c] as [number, number];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

interface SimResult {
  /** Completed requests per second after warm-up. */
  goodput: number;
  /** p99 latency of admitted requests after warm-up, ms. */
  p99: number;
  limits: number[];
}

/**
 * A service whose latency rises with concurrency: `base` ms up to `capacity` requests in
 * flight, then proportionally more (processor sharing), offered `load` × its capacity
 * in Poisson arrivals. Everything runs on the injected clock; nothing sleeps.
 */
function simulate(o: {
  limiter: GradientLimiter | undefined;
  clock: ManualClock;
  capacity: number;
  base: number;
  load: number;
  durationMs: number;
  warmupMs: number;
  seed: number;
}): SimResult {
  const { limiter, clock, capacity, base } = o;
  const random = seeded(o.seed);
  const ratePerMs = (o.load * capacity) / base;
  const done = new Completions();
  let inFlight = 0;
  let next = 0;
  let completed = 0;
  const latencies: number[] = [];
  const limits: number[] = [];
  let nextLimitSample = 0;
  while (next < o.durationMs) {
    // Completions due before the next arrival.
    while (done.peek() <= next) {
      const [at, start] = done.pop();
      clock.t = at;
      inFlight--;
      limiter?.release(start);
      if (at >= o.warmupMs) {
        completed++;
        latencies.push(at - start);
      }
    }
    clock.t = next;
    if (limiter !== undefined && next >= nextLimitSample) {
      limits.push(limiter.limit);
      nextLimitSample += 100;
    }
    const start = limiter === undefined ? clock.t : limiter.tryAcquire();
    if (start >= 0) {
      inFlight++;
      done.push([clock.t + base * Math.max(1, inFlight / capacity), start]);
    }
    next += -Math.log(1 - random()) / ratePerMs;
  }
  latencies.sort((a, b) => a - b);
  const p99 =
    latencies.length === 0
      ? Number.POSITIVE_INFINITY
      : (latencies[Math.floor(latencies.length * 0.99)] as number);
  return { goodput: (completed * 1000) / (o.durationMs - o.warmupMs), p99, limits };
}

describe("GradientLimiter", () => {
  it("measures minRTT at minLimit first, then grows while latency stays within the buffer", () => {
    const clock = new ManualClock();
    const limiter = new GradientLimiter({ clock, minRttRequests: 5, random: () => 0 });
    expect(limiter.measuringMinRtt).toBe(true);
    expect(limiter.limit).toBe(3);
    const starts = [limiter.tryAcquire(), limiter.tryAcquire(), limiter.tryAcquire()];
    expect(limiter.tryAcquire()).toBe(-1); // never queues: refused at once
    clock.advance(10);
    for (const s of starts) limiter.release(s);
    const more = [limiter.tryAcquire(), limiter.tryAcquire()];
    clock.advance(10);
    for (const s of more) limiter.release(s);
    expect(limiter.measuringMinRtt).toBe(false);
    expect(limiter.minRtt).toBe(10);
    // A window at minRTT: gradient 1.25 → clamp(1.25·3 + √3).
    clock.advance(90);
    const s = limiter.tryAcquire();
    clock.advance(10);
    limiter.release(s);
    expect(limiter.limit).toBe(Math.floor(1.25 * 3 + Math.sqrt(3)));
  });

  it("re-measures minRTT every minRttInterval (with jitter), counting only requests started in the window", () => {
    const clock = new ManualClock();
    const limiter = new GradientLimiter({
      clock,
      minRttRequests: 1,
      minRttInterval: 1000,
      minRttJitter: 0.5,
      random: () => 0.5,
      initialLimit: 50,
      sampleWindow: 100,
    });
    const first = limiter.tryAcquire();
    clock.advance(5);
    limiter.release(first);
    expect(limiter.minRtt).toBe(5);
    expect(limiter.limit).toBe(50);
    const old = limiter.tryAcquire(); // starts before the next minRTT window
    clock.advance(1250); // 1000 · (1 + 0.5 · 0.5)
    expect(limiter.tryAcquire()).toBeGreaterThanOrEqual(0);
    expect(limiter.measuringMinRtt).toBe(true);
    limiter.release(old); // 1250 ms: not a minRTT sample
    expect(limiter.measuringMinRtt).toBe(true);
  });

  it("names the option path of bad values", () => {
    expect(() => new GradientLimiter({ buffer: -1 })).toThrow(
      "concurrency.buffer: expected a number in 0..10, got -1",
    );
    expect(() => new GradientLimiter({ minLimit: 10, maxLimit: 5 })).toThrow(
      "concurrency.maxLimit: expected an integer in 10..1000000, got 5",
    );
    expect(() => new GradientLimiter({ minConcurrency: 3 } as never)).toThrow(
      'concurrency: unknown option "minConcurrency" (did you mean "minLimit"?)',
    );
  });

  it("property: one step stays in [minLimit, maxLimit], grows within the buffer and shrinks beyond 2× it", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 1000, noNaN: true }),
        fc.double({ min: 0.1, max: 1000, noNaN: true }),
        fc.double({ min: 0, max: 100_000, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (limit, minRtt, sampleRtt, buffer) => {
          const next = nextLimit(limit, minRtt, sampleRtt, buffer, 1, 1000);
          expect(next).toBeGreaterThanOrEqual(1);
          expect(next).toBeLessThanOrEqual(1000);
          if (sampleRtt <= minRtt * (1 + buffer))
            expect(next).toBeGreaterThanOrEqual(Math.min(limit, 1000));
          if (sampleRtt >= 4 * minRtt * (1 + buffer) && limit >= 4)
            expect(next).toBeLessThan(limit);
          // Monotone: a slower window never yields a higher limit.
          expect(nextLimit(limit, minRtt, sampleRtt * 2, buffer, 1, 1000)).toBeLessThanOrEqual(
            next,
          );
        },
      ),
    );
  });

  it("property: never admits more than its limit in flight, whatever the arrivals and RTTs", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 300 })), { maxLength: 400 }),
        (ops) => {
          const clock = new ManualClock();
          const limiter = new GradientLimiter({ clock, minRttRequests: 3, random: () => 0.3 });
          const open: number[] = [];
          for (const [arrive, gap] of ops) {
            clock.advance(gap);
            if (arrive || open.length === 0) {
              const limitBefore = limiter.limit;
              const s = limiter.tryAcquire();
              if (s >= 0) open.push(s);
              expect(limiter.inFlight).toBeLessThanOrEqual(Math.max(limitBefore, limiter.limit));
            } else {
              limiter.release(open.shift() as number);
            }
            expect(limiter.inFlight).toBe(open.length);
            expect(limiter.limit).toBeGreaterThanOrEqual(3);
            expect(limiter.limit).toBeLessThanOrEqual(1000);
          }
        },
      ),
    );
  });

  it("simulation: at 3× capacity of a service whose latency rises with concurrency it converges, keeping goodput and p99 where the unprotected service collapses", () => {
    const common = {
      capacity: 20,
      base: 10,
      load: 3,
      durationMs: 20_000,
      warmupMs: 3_000,
      seed: 7,
    };
    const clock = new ManualClock();
    const limited = simulate({
      ...common,
      clock,
      limiter: new GradientLimiter({ clock, random: seeded(1) }),
    });
    const bare = simulate({ ...common, clock: new ManualClock(), limiter: undefined });
    const capacityRps = (common.capacity * 1000) / common.base;
    expect(limited.goodput).toBeGreaterThanOrEqual(0.9 * capacityRps);
    expect(limited.p99).toBeLessThanOrEqual(2 * common.base);
    // Converged: after warm-up the limit stays near capacity (20 here, ~30 at equilibrium).
    const steady = limited.limits.slice(30);
    expect(Math.min(...steady)).toBeGreaterThanOrEqual(3);
    expect(Math.max(...steady)).toBeLessThanOrEqual(3 * common.capacity);
    // Without the limiter, latency grows without bound.
    expect(bare.p99).toBeGreaterThan(100 * common.base);
  });
});
