import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Balancer,
  Endpoint,
  EndpointSet,
  endpointInfo,
  FailureRate,
  failureRateConfig,
  PeakEwma,
  seededRandom,
} from "../src/index.js";
import { FakeClock } from "./helpers.js";

const TAU = 5_000;

describe("FailureRate math", () => {
  it("starts at 0 and reads F / (N + prior) with no time elapsed", () => {
    const r = new FailureRate(0);
    expect(r.rate(0)).toBe(0);
    expect(r.costMultiplier(1e9)).toBe(1);
    r.observe(true, 0);
    expect(r.rate(0)).toBe(1 / 11); // one isolated failure: 1 / (1 + 10)
    r.observe(false, 0);
    r.observe(false, 0);
    expect(r.rate(0)).toBe(1 / 13);
    expect(r.costMultiplier(0)).toBeCloseTo(Math.exp(15 / 13), 12);
  });

  it("decays both counts by w = exp(-dt/decay) before adding, and applies decay on read", () => {
    const r = new FailureRate(0);
    r.observe(true, 0); // F = 1, N = 1
    r.observe(false, 2_000); // F = w1, N = w1 + 1
    const w1 = Math.exp(-2_000 / TAU);
    expect(r.rate(2_000)).toBeCloseTo(w1 / (w1 + 1 + 10), 15);
    r.observe(true, 7_000); // F = w1·w2 + 1, N = (w1 + 1)·w2 + 1
    const w2 = Math.exp(-5_000 / TAU);
    const F = w1 * w2 + 1;
    const N = (w1 + 1) * w2 + 1;
    expect(r.rate(7_000)).toBeCloseTo(F / (N + 10), 15);
    const w3 = Math.exp(-3_000 / TAU);
    expect(r.rate(10_000)).toBeCloseTo((F * w3) / (N * w3 + 10), 15);
    expect(r.costMultiplier(10_000)).toBeCloseTo(Math.exp((15 * F * w3) / (N * w3 + 10)), 12);
  });

  it("reading is pure: reads at any time never change later results", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 20_000 }), failed: fc.boolean() }), {
          maxLength: 60,
        }),
        fc.array(fc.integer({ min: 0, max: 40_000 }), { maxLength: 30 }),
        (samples, reads) => {
          const a = new FailureRate(0);
          const b = new FailureRate(0);
          let t = 0;
          for (const [i, s] of samples.entries()) {
            t += s.dt;
            if (reads[i] !== undefined) b.rate(t + reads[i]!);
            a.observe(s.failed, t);
            b.observe(s.failed, t);
          }
          expect(b.rate(t + 1_234)).toBe(a.rate(t + 1_234));
        },
      ),
      { seed: 11 },
    );
  });

  it("converges to the true rate under sustained traffic; the prior only matters at low traffic", () => {
    const fast = new FailureRate(0);
    const random = seededRandom(5);
    for (let t = 0; t < 60_000; t += 10) fast.observe(random() < 0.1, t); // 100 rps, 10 % fail
    expect(fast.rate(60_000)).toBeGreaterThan(0.08);
    expect(fast.rate(60_000)).toBeLessThan(0.12);
    // Always failing: the rate approaches 1 as traffic grows, bounded by N / (N + prior).
    const always = new FailureRate(0);
    for (let t = 0; t < 60_000; t += 10) always.observe(true, t);
    const n = 1 / (1 - Math.exp(-10 / TAU)); // steady-state decayed count at 100 rps
    expect(always.rate(59_990)).toBeCloseTo(n / (n + 10), 6);
  });

  it("forgets: long after the last failure the rate is 0 and the multiplier exactly 1", () => {
    const r = new FailureRate(0);
    r.observe(true, 0);
    expect(r.rate(60_000)).toBeGreaterThan(0);
    r.observe(false, 1_000_000);
    expect(r.rate(1_000_000)).toBe(0);
    expect(r.costMultiplier(1_000_000)).toBe(1);
  });

  it("treats a time earlier than the last observation as that observation's time", () => {
    const r = new FailureRate(1_000);
    r.observe(true, 1_000);
    r.observe(false, 500);
    expect(r.rate(0)).toBe(1 / 12);
    r.reset(2_000);
    expect(r.rate(2_000)).toBe(0);
  });

  it("prior 0 reads the raw decayed ratio, failureCostFactor 0 leaves cost alone", () => {
    const raw = new FailureRate(0, { prior: 0, failureCostFactor: 0 });
    expect(raw.rate(0)).toBe(0);
    raw.observe(true, 0);
    raw.observe(false, 1_000);
    const w = Math.exp(-1_000 / TAU);
    expect(raw.rate(50_000)).toBeCloseTo(w / (w + 1), 12);
    expect(raw.costMultiplier(50_000)).toBe(1);
  });

  it("the default factor 15 gives the multipliers the README promises", () => {
    const multiplier = (f: number) => Math.exp(failureRateConfig(undefined).failureCostFactor * f);
    expect(multiplier(0.1)).toBeCloseTo(4.48, 2); // 10 ms × 4.48 < 100 ms
    expect(multiplier(1 / 3)).toBeCloseTo(148.4, 1); // 1 ms × 148 > 50 ms × (pending + 1)
    expect(multiplier(0.5)).toBeCloseTo(1808, 0);
  });
});

describe("Endpoint cost with failures", () => {
  const endpoint = (pending: number, failures: number, responses: number) => {
    const rate = new FailureRate(0);
    for (let i = 0; i < responses; i++) rate.observe(i < failures, 0);
    const e = new Endpoint(endpointInfo("10.0.0.1:80"), new PeakEwma(0), undefined, rate);
    e.pending = pending;
    return e;
  };

  it("cost = estimate × (pending + 1) × exp(k·f) / weight", () => {
    const e = endpoint(2, 1, 4);
    expect(e.cost(0)).toBeCloseTo(30 * 3 * Math.exp(15 * (1 / 14)), 10);
    // The four-argument form stays optional: no failure rate means no multiplier.
    const plain = new Endpoint(endpointInfo("10.0.0.2:80"), new PeakEwma(0), undefined);
    expect(plain.cost(0)).toBe(30);
  });

  it("property: cost is monotonic in the failure rate and in pending", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 200 }),
        (pending, extraPending, responses, failuresSeed) => {
          const failures = responses === 0 ? 0 : failuresSeed % (responses + 1);
          const base = endpoint(pending, failures, responses);
          // More pending, same failures: costs at least as much.
          expect(
            endpoint(pending + extraPending, failures, responses).cost(0),
          ).toBeGreaterThanOrEqual(base.cost(0));
          // One of the successes turned into a failure: strictly higher rate and cost.
          if (failures < responses) {
            const worse = endpoint(pending, failures + 1, responses);
            expect(worse.failureRate.rate(0)).toBeGreaterThan(base.failureRate.rate(0));
            expect(worse.cost(0)).toBeGreaterThan(base.cost(0));
          }
        },
      ),
      { seed: 3 },
    );
  });
});

describe("EndpointSet feeds the failure rate from outcomes", () => {
  it("counts settled successes and failures, ignores neutral outcomes, shows it in snapshots", () => {
    const clock = new FakeClock();
    const s = new EndpointSet({ clock, accrual: false });
    const e = s.add("10.0.0.1:80");
    const run = (outcome: "success" | "failure" | "neutral") => {
      s.start(e);
      s.responded(e, 5);
      s.settled(e, outcome);
    };
    run("failure");
    run("success");
    run("neutral"); // e.g. aborted by the caller: says nothing about the endpoint
    run("failure");
    const [snap] = s.snapshot();
    expect(snap!.failureRate).toBe(2 / (3 + 10));
    expect(snap!.failures).toBe(2);
    expect(snap!.rttMs).toBeGreaterThan(5); // failures are ordinary RTT samples
    expect(snap!.cost).toBeCloseTo(snap!.rttMs * Math.exp((15 * 2) / 13), 10);
  });

  it("a restored endpoint starts with a fresh failure rate, like its fresh RTT estimate", () => {
    const clock = new FakeClock();
    const s = new EndpointSet({ clock, accrual: { consecutiveFailures: 2, jitter: 0 } });
    const e = s.add("10.0.0.1:80");
    for (let i = 0; i < 2; i++) {
      s.start(e);
      s.responded(e, 1);
      s.settled(e, "failure");
    }
    expect(e.state).toBe("ejected");
    clock.advance(1_000);
    const probe = s.pick()!;
    s.start(probe);
    s.responded(probe, 5);
    s.settled(probe, "success");
    expect(e.state).toBe("ready");
    expect(e.failureRate.rate(clock.now())).toBe(0);
  });

  it("inOutage: failing since it was healthy, not failing every few requests", () => {
    const r = new FailureRate(0);
    for (let t = 0; t < 10_000; t += 100) r.observe(false, t);
    expect(r.inOutage(10_000)).toBe(false); // no failure
    r.observe(true, 10_000);
    r.observe(true, 10_010);
    expect(r.inOutage(10_010)).toBe(true); // a run of failures after successes only
    r.observe(false, 10_020);
    expect(r.inOutage(10_020)).toBe(false); // a success ended it
    // Flaky: fails every 2nd request; the failures before the current run count.
    const flaky = new FailureRate(0);
    for (let n = 1; n <= 40; n++) flaky.observe(n % 2 === 0, n * 100);
    expect(flaky.inOutage(4_000)).toBe(false);
    // Long after, the old failures have decayed below half a failure: an outage again.
    flaky.observe(false, 30_000);
    flaky.observe(true, 30_000);
    expect(flaky.inOutage(30_000)).toBe(true);
  });

  it("PeakEwma.reset starts from a given estimate (the probe's round trip), within floor and ceiling", () => {
    const e = new PeakEwma(0);
    e.observe(5_000, 10);
    expect(e.lastSampleMs).toBe(5_000);
    e.observe(2, 20);
    e.reset(20, e.lastSampleMs);
    expect(e.estimate(20)).toBe(2);
    e.reset(20, 0);
    expect(e.estimate(20)).toBe(1); // floor
    e.reset(20);
    expect(e.estimate(20)).toBe(30); // default RTT
  });

  it("rejects bad failureRate options naming the field", () => {
    expect(() => new EndpointSet({ failureRate: { failureCostFactor: -1 } })).toThrow(
      "failureRate.failureCostFactor: expected a number in 0..100, got -1",
    );
    expect(() => new Balancer({ failureRate: { prior: "10" as never } })).toThrow(
      'failureRate.prior: expected a number in 0..1000000, got "10"',
    );
    expect(() => failureRateConfig({ decayMs: 0 })).toThrow(
      "failureRate.decayMs: expected a duration in ms in 1..2147483647, got 0",
    );
    expect(() => failureRateConfig(5 as never)).toThrow(
      "failureRate: expected an options object, got 5",
    );
    expect(failureRateConfig(undefined)).toEqual({
      decayMs: 5_000,
      prior: 10,
      failureCostFactor: 15,
    });
  });
});
