import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RetryBudget } from "../src/index.js";
import { FakeClock } from "./support/clock.js";

describe("RetryBudget", () => {
  it("allows one retry per five requests at the default ratio, plus the reserve", () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ clock, minRetriesPerSecond: 0 });
    expect(budget.tryWithdraw()).toBe(false);
    for (let i = 0; i < 5; i++) budget.deposit();
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    expect(budget.state()).toMatchObject({ deposits: 15, withdrawals: 3, balance: 0, reserve: 0 });
  });

  it("always has minRetriesPerSecond × ttl retries in reserve", () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ clock, minRetriesPerSecond: 2, ttl: 5000 });
    expect(budget.state().balance).toBe(10);
    let granted = 0;
    while (budget.tryWithdraw()) granted++;
    expect(granted).toBe(10);
    // The reserve refills as the withdrawals age out of the window.
    clock.advance(5500);
    expect(budget.state().balance).toBe(10);
  });

  it("forgets deposits after ttl (+ one slot), slot by slot", () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ clock, minRetriesPerSecond: 0, retryRatio: 1, ttl: 1000 });
    budget.deposit(); // slot 0
    clock.advance(500);
    budget.deposit(); // slot 5
    expect(budget.state().balance).toBe(2);
    clock.advance(599); // t=1099, slot 10: slot 0 is still in the window (tower keeps 10 + current)
    expect(budget.state().balance).toBe(2);
    clock.advance(1); // t=1100, slot 11: slot 0 expired
    expect(budget.state()).toMatchObject({ balance: 1, deposits: 1 });
    clock.advance(10_000);
    expect(budget.state()).toMatchObject({ balance: 0, deposits: 0, withdrawals: 0 });
  });

  it("with a ratio above 1, each request pays for that many retries", () => {
    const budget = new RetryBudget({
      clock: new FakeClock(),
      retryRatio: 3,
      minRetriesPerSecond: 0,
    });
    budget.deposit();
    expect([budget.tryWithdraw(), budget.tryWithdraw(), budget.tryWithdraw()]).toEqual([
      true,
      true,
      true,
    ]);
    expect(budget.tryWithdraw()).toBe(false);
  });

  it("with a ratio of 0 only the reserve pays", () => {
    const budget = new RetryBudget({
      clock: new FakeClock(),
      retryRatio: 0,
      minRetriesPerSecond: 1,
      ttl: 1000,
    });
    for (let i = 0; i < 100; i++) budget.deposit();
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
  });

  it("has Linkerd's defaults", () => {
    const s = new RetryBudget().state();
    expect(s).toMatchObject({
      retryRatio: 0.2,
      minRetriesPerSecond: 10,
      ttl: 10_000,
      reserve: 100,
      name: "default",
    });
  });

  it("rejects bad options with the option path and value", () => {
    expect(() => new RetryBudget({ ttl: 500 })).toThrow(
      new RangeError("budget.ttl: expected a number in 1000..60000, got 500"),
    );
    expect(() => new RetryBudget({ ttl: 61_000 })).toThrow(RangeError);
    expect(() => new RetryBudget({ retryRatio: -1 })).toThrow(
      "budget.retryRatio: expected a number in 0..1000, got -1",
    );
    expect(() => new RetryBudget({ retryRatio: 1001 })).toThrow(RangeError);
    expect(() => new RetryBudget({ retryRatio: "0.2" as never })).toThrow(TypeError);
    expect(() => new RetryBudget({ clock: {} as never })).toThrow(
      "budget.clock: expected a clock { now(): number }, got {}",
    );
  });

  it("property: over any window, retries never exceed ratio × deposits + reserve", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("deposit" as const), n: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ kind: fc.constant("retry" as const), n: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ kind: fc.constant("wait" as const), n: fc.integer({ min: 0, max: 3000 }) }),
    );
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 20, noNaN: true }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 6 }).map((s) => s * 1000),
        fc.array(op, { maxLength: 200 }),
        (ratio, minPerSecond, ttl, ops) => {
          const clock = new FakeClock();
          const budget = new RetryBudget({
            clock,
            retryRatio: ratio,
            minRetriesPerSecond: minPerSecond,
            ttl,
          });
          const deposits: number[] = [];
          const retries: number[] = [];
          const slot = ttl / 10;
          const reserve = (minPerSecond * ttl) / 1000;
          for (const o of ops) {
            if (o.kind === "wait") clock.advance(o.n);
            else if (o.kind === "deposit")
              for (let i = 0; i < o.n; i++) {
                budget.deposit();
                deposits.push(clock.t);
              }
            else {
              for (let i = 0; i < o.n; i++) {
                if (!budget.tryWithdraw()) continue;
                retries.push(clock.t);
                // The window the budget counts: the current slot and the 10 before it.
                const from = (Math.floor(clock.t / slot) - 10) * slot;
                const r = retries.filter((t) => t >= from).length;
                const d = deposits.filter((t) => t >= from).length;
                if (r > ratio * d + reserve + 1e-6) return false;
              }
            }
          }
          // And over every window of length ttl ending anywhere, counting deposits from ttl + slot earlier.
          for (const t of retries) {
            const r = retries.filter((x) => x > t - ttl * 0.9 && x <= t).length;
            const d = deposits.filter((x) => x > t - ttl - 2 * slot && x <= t).length;
            if (r > ratio * d + reserve + 1e-6) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
