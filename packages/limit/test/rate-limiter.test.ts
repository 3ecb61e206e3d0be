import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RateLimiter } from "../src/index.js";
import { ManualClock } from "./support.js";

describe("RateLimiter (GCRA)", () => {
  it("admits a burst, then one request per interval, and tells when to retry", () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ total: { requestsPerSecond: 10, burst: 3 }, clock });
    expect([0, 1, 2].map(() => limiter.tryAcquire())).toEqual([0, 0, 0]);
    const refused = limiter.tryAcquire();
    expect(refused).toBeCloseTo(-100);
    expect(limiter.rejectedBy).toBe("total");
    clock.advance(-refused);
    expect(limiter.tryAcquire()).toBe(0);
    expect(limiter.tryAcquire()).toBeLessThan(0);
  });

  it("defaults the burst to one second's worth", () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ total: { requestsPerSecond: 5 }, clock });
    let admitted = 0;
    for (let i = 0; i < 20; i++) if (limiter.tryAcquire() >= 0) admitted++;
    expect(admitted).toBe(5);
  });

  it("limits each identity apart, applies overrides shared by their keys, and refusals do not eat the total", () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({
      total: { requestsPerSecond: 100 },
      identity: { requestsPerSecond: 2 },
      overrides: [{ requestsPerSecond: 5, keys: ["vip-a", "vip-b"] }],
      clock,
    });
    const count = (key: string | undefined, n: number) => {
      let ok = 0;
      for (let i = 0; i < n; i++) if (limiter.tryAcquire(key) >= 0) ok++;
      return ok;
    };
    expect(count("a", 10)).toBe(2);
    expect(limiter.rejectedBy).toBe("identity");
    expect(count("b", 10)).toBe(2);
    expect(count("vip-a", 3)).toBe(3);
    expect(count("vip-b", 10)).toBe(2); // shares vip-a's 5
    expect(limiter.rejectedBy).toBe("override");
    // 9 admitted so far: the 24 refusals did not use the total of 100.
    expect(count(undefined, 200)).toBe(91);
    expect(limiter.rejectedBy).toBe("total");
  });

  it("queues within maxWait by reserving capacity", () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ total: { requestsPerSecond: 10, burst: 1 }, clock });
    expect(limiter.tryAcquire(undefined, 250)).toBe(0);
    expect(limiter.tryAcquire(undefined, 250)).toBeCloseTo(100);
    expect(limiter.tryAcquire(undefined, 250)).toBeCloseTo(200);
    expect(limiter.tryAcquire(undefined, 250)).toBeCloseTo(-300);
  });

  it("keeps at most maxKeys per-key states, dropping the least recently used", () => {
    const clock = new ManualClock();
    const limiter = new RateLimiter({ identity: { requestsPerSecond: 1 }, maxKeys: 3, clock });
    for (const k of ["a", "b", "c"]) limiter.tryAcquire(k);
    expect(limiter.tryAcquire("a")).toBeLessThan(0); // touches nothing: refused
    limiter.tryAcquire("d"); // evicts "a" (least recently admitted)
    expect(limiter.keys).toBe(3);
    expect(limiter.tryAcquire("b")).toBeLessThan(0);
    expect(limiter.tryAcquire("a")).toBe(0); // forgotten, so forgiven
    for (let i = 0; i < 10_000; i++) limiter.tryAcquire(`k${i}`);
    expect(limiter.keys).toBe(3);
  });

  it("names the option path of bad values", () => {
    expect(() => new RateLimiter({ total: { requestsPerSecond: 0 } })).toThrow(
      "rateLimit.total.requestsPerSecond: expected a number in 0 (exclusive)..1000000000, got 0",
    );
    expect(() => new RateLimiter({ identity: { requestsPerSecond: 1, burst: 0.5 } })).toThrow(
      "rateLimit.identity.burst: expected a number in 1..1000000000, got 0.5",
    );
    expect(() => new RateLimiter({ overrides: [{ requestsPerSecond: 1, keys: [] }] })).toThrow(
      "rateLimit.overrides[0].keys: expected a non-empty array of strings, got an array",
    );
    expect(
      () =>
        new RateLimiter({
          overrides: [
            { requestsPerSecond: 1, keys: ["x"] },
            { requestsPerSecond: 2, keys: ["x"] },
          ],
        }),
    ).toThrow("rateLimit.overrides[1].keys[0]: expected a key in one override only");
    expect(
      () =>
        new RateLimiter({ total: { requestsPerSecond: 10 }, identity: { requestsPerSecond: 20 } }),
    ).toThrow(
      "rateLimit.identity.requestsPerSecond: expected at most total.requestsPerSecond (10), got 20",
    );
    expect(
      () =>
        new RateLimiter({
          total: { requestsPerSecond: 10 },
          overrides: [{ requestsPerSecond: 11, keys: ["a"] }],
        }),
    ).toThrow(
      "rateLimit.overrides[0].requestsPerSecond: expected at most total.requestsPerSecond (10), got 11",
    );
    expect(() => new RateLimiter({} as never)).toThrow(
      "rateLimit: expected at least one of total, identity, overrides",
    );
    expect(() => new RateLimiter({ total: { rps: 1 } } as never)).toThrow(
      'rateLimit.total: unknown option "rps" (did you mean "requestsPerSecond"?)',
    );
  });

  it("property: admits at most burst + rate × span in any span, and exactly what a token bucket admits", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 200 }),
        (rps, burst, gaps) => {
          const clock = new ManualClock();
          const limiter = new RateLimiter({ total: { requestsPerSecond: rps, burst }, clock });
          // Reference: a token bucket with capacity `burst`, refilled at rps.
          let tokens = burst;
          let last = 0;
          const admittedAt: number[] = [];
          for (const gap of gaps) {
            clock.advance(gap);
            tokens = Math.min(burst, tokens + ((clock.t - last) * rps) / 1000);
            last = clock.t;
            const bucket = tokens >= 1 - 1e-9;
            const r = limiter.tryAcquire();
            if (r < 0) {
              expect(-r).toBeGreaterThan(0);
              // Retrying exactly after retry-after would conform.
              expect(tokens + (-r * rps) / 1000).toBeGreaterThanOrEqual(1 - 1e-6);
            }
            expect(r >= 0).toBe(bucket);
            if (bucket) {
              tokens -= 1;
              admittedAt.push(clock.t);
            }
          }
          for (let i = 0; i < admittedAt.length; i++) {
            for (let j = i; j < admittedAt.length; j++) {
              const span = (admittedAt[j] as number) - (admittedAt[i] as number);
              expect(j - i + 1).toBeLessThanOrEqual(burst + (span * rps) / 1000 + 1e-6);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("property: per-key states never exceed maxKeys", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 300 }),
        (maxKeys, keys) => {
          const limiter = new RateLimiter({
            identity: { requestsPerSecond: 1 },
            maxKeys,
            clock: new ManualClock(),
          });
          for (const k of keys) {
            limiter.tryAcquire(`c${k}`);
            expect(limiter.keys).toBeLessThanOrEqual(maxKeys);
          }
        },
      ),
    );
  });
});
