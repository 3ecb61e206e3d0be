import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PeakEwma, peakEwmaConfig } from "../src/index.js";

describe("PeakEwma", () => {
  it("starts at the default RTT of 30 ms and costs estimate × (pending + 1)", () => {
    const e = new PeakEwma(0);
    expect(e.estimate(0)).toBe(30);
    expect(e.cost(0, 0)).toBe(30);
    expect(e.cost(3, 0)).toBe(120);
  });

  it("takes a slower sample at once (peak) and decays faster ones in with exp(-elapsed/10s)", () => {
    const e = new PeakEwma(0);
    e.observe(100, 1000);
    expect(e.estimate(1000)).toBe(100);
    e.observe(10, 6000);
    const w = Math.exp(-5000 / 10_000);
    expect(e.estimate(6000)).toBeCloseTo(100 * w + 10 * (1 - w), 10);
  });

  it("decays towards the 1 ms floor while idle and never goes below it", () => {
    const e = new PeakEwma(0);
    expect(e.estimate(10_000)).toBeCloseTo(30 * Math.exp(-1), 10);
    expect(e.estimate(1_000_000)).toBe(1);
    e.observe(0.01, 1_000_000);
    expect(e.estimate(1_000_000)).toBe(1);
  });

  it("has no failure penalty: the removed failurePenalty option is refused by name", () => {
    expect("observeFailure" in PeakEwma.prototype).toBe(false);
    expect(() => peakEwmaConfig({ failurePenalty: 2 } as never)).toThrow(
      "ewma.failurePenalty: expected no value (removed: failures raise cost through failureRate.failureCostFactor), got 2",
    );
  });

  it("is deterministic: reading the estimate never changes it", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dt: fc.integer({ min: 0, max: 20_000 }),
            rtt: fc.double({ min: 0, max: 5000, noNaN: true }),
          }),
          {
            maxLength: 50,
          },
        ),
        fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 20 }),
        (samples, reads) => {
          const a = new PeakEwma(0);
          const b = new PeakEwma(0);
          let t = 0;
          for (const [i, s] of samples.entries()) {
            t += s.dt;
            a.observe(s.rtt, t);
            if (reads[i] !== undefined) b.estimate(t + reads[i]!);
            b.observe(s.rtt, t);
          }
          expect(b.estimate(t)).toBe(a.estimate(t));
        },
      ),
    );
  });

  it("after a sample the estimate is at least the sample, bounded by the peak seen", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dt: fc.integer({ min: 0, max: 20_000 }),
            rtt: fc.double({ min: 1, max: 5000, noNaN: true }),
          }),
          {
            minLength: 1,
            maxLength: 50,
          },
        ),
        (samples) => {
          const e = new PeakEwma(0);
          let t = 0;
          let peak = 30;
          for (const s of samples) {
            t += s.dt;
            e.observe(s.rtt, t);
            peak = Math.max(peak, s.rtt);
            expect(e.estimate(t)).toBeGreaterThanOrEqual(s.rtt - 1e-9);
            expect(e.estimate(t)).toBeLessThanOrEqual(peak + 1e-9);
          }
        },
      ),
    );
  });

  it("rejects bad options naming the field", () => {
    expect(() => peakEwmaConfig({ decayMs: -1 })).toThrow(
      "ewma.decayMs: expected a duration in ms in 1..2147483647, got -1",
    );
    expect(() => peakEwmaConfig({ defaultRttMs: 0.5 })).toThrow(
      /ewma\.defaultRttMs: expected .* got 0.5/,
    );
    expect(() => peakEwmaConfig({ floorMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});

describe("PeakEwma default RTT", () => {
  it("blends a faster first sample in rather than replacing the default (Linkerd/tower math)", () => {
    const e = new PeakEwma(0);
    e.observe(2, 5);
    const w = Math.exp(-5 / 10_000);
    expect(e.estimate(5)).toBeCloseTo(30 * w + 2 * (1 - w), 12);
    e.observe(100, 6);
    e.reset(20);
    expect(e.estimate(20)).toBe(30);
  });
});
