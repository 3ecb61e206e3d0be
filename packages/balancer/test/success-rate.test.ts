import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EndpointSet, FailureAccrual, failureAccrualConfig, seededRandom } from "../src/index.js";
import { FakeClock } from "./helpers.js";
import { finish } from "./simulation.js";

const config = (o: Record<string, unknown> = {}) =>
  failureAccrualConfig({
    mode: "success-rate",
    successRate: { threshold: 0.8, minRequests: 20, windowMs: 10_000 },
    minPenaltyMs: 1_000,
    jitter: 0,
    ...o,
  });

describe("success-rate failure accrual (pure core)", () => {
  it("ejects exactly when the windowed success rate over ≥ minRequests falls below the threshold", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ ok: fc.boolean(), dt: fc.nat(400) }), { maxLength: 200 }),
        (outcomes) => {
          const a = new FailureAccrual(config(), () => 0);
          // A reference model: every outcome with its time, the window's last 10 s.
          const seen: { ok: boolean; t: number }[] = [];
          let t = 0;
          for (const { ok, dt } of outcomes) {
            t += dt;
            if (a.state !== "ready") return; // recovery is covered below
            seen.push({ ok, t });
            let ejected = false;
            if (ok) a.success(t);
            else ejected = a.failure(t);
            // Slots of 1 s: the window holds the current slot and the 9 before it.
            const slot = Math.floor(t / 1_000);
            const inWindow = seen.filter((s) => Math.floor(s.t / 1_000) > slot - 10);
            const failures = inWindow.filter((s) => !s.ok).length;
            const expected =
              !ok && inWindow.length >= 20 && (inWindow.length - failures) / inWindow.length < 0.8;
            expect(ejected).toBe(expected);
          }
        },
      ),
    );
  });

  it("an endpoint failing one request in ten is never ejected; one failing every third is", () => {
    const rare = new FailureAccrual(config(), () => 0);
    const often = new FailureAccrual(config(), () => 0);
    let ejectedAt = -1;
    for (let i = 1; i <= 1_000; i++) {
      const t = i * 10;
      if (i % 10 === 0) expect(rare.failure(t)).toBe(false);
      else rare.success(t);
      if (ejectedAt === -1) {
        if (i % 3 === 0) {
          if (often.failure(t)) ejectedAt = i;
        } else often.success(t);
      }
    }
    expect(rare.state).toBe("ready");
    // 7 consecutive failures never happen at 1 in 3: the consecutive mode would never eject it.
    expect(ejectedAt).toBe(21);
    expect(often.state).toBe("ejected");
    expect(often.reason).toBe("success-rate");
  });

  it("recovers like the consecutive mode: probe after the backoff, one success restores, a failed probe doubles the penalty", () => {
    const clock = new FakeClock();
    const states: string[] = [];
    const set = new EndpointSet({
      clock,
      random: seededRandom(1),
      accrual: {
        mode: "success-rate",
        successRate: { threshold: 0.9, minRequests: 10, windowMs: 5_000 },
        minPenaltyMs: 1_000,
        jitter: 0,
      },
      onStateChange: (_e, state, reason) => states.push(`${state}:${reason}`),
    });
    const e = set.add("10.0.0.1:80");
    set.add("10.0.0.2:80");
    states.length = 0;
    // 8 successes, then failures: the 10th request (2 of 10 failed, 80 % < 90 %) ejects.
    for (let i = 0; i < 8; i++) {
      set.start(e);
      finish(set, e, 5, true);
    }
    set.start(e);
    finish(set, e, 5, false);
    expect(e.state).toBe("ready");
    set.start(e);
    finish(set, e, 5, false);
    expect(e.state).toBe("ejected");
    expect(states).toEqual(["ejected:success-rate"]);
    clock.advance(1_000);
    const probe = set.pick();
    expect(probe).toBe(e);
    set.start(e);
    finish(set, e, 5, false);
    expect(states.at(-1)).toBe("ejected:probe-failed");
    expect(set.snapshot().find((s) => s.address === e.address)?.probeInMs).toBe(2_000);
    clock.advance(2_000);
    expect(set.pick()).toBe(e);
    set.start(e);
    finish(set, e, 5, true);
    expect(states.at(-1)).toBe("ready:probe-succeeded");
    // The window starts over: one failure right after restoring does not eject again.
    set.start(e);
    finish(set, e, 5, false);
    expect(e.state).toBe("ready");
  });

  it("bad options are named", () => {
    expect(() => failureAccrualConfig({ mode: "rate" as never })).toThrow(
      'accrual.mode: expected "consecutive-failures" or "success-rate", got "rate"',
    );
    expect(() => failureAccrualConfig({ successRate: { threshold: 2 } })).toThrow(
      "accrual.successRate.threshold: expected a number in 0..1, got 2",
    );
    expect(() => failureAccrualConfig({ successRate: { minRequests: 0 } })).toThrow(
      "accrual.successRate.minRequests: expected an integer in 1..1000000, got 0",
    );
    expect(() => failureAccrualConfig({ successRate: { window: 5 } as never })).toThrow(
      /accrual\.successRate: unknown option "window"/,
    );
  });
});
