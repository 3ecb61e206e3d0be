import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HedgePolicy, HedgeRace, RetryBudget } from "../src/index.js";
import { FakeClock } from "./support/clock.js";

/** A budget that pays for `n` hedges, then refuses. */
const budgetOf = (n: number) => {
  let left = n;
  return {
    paid: 0,
    tryWithdraw() {
      if (left === 0) return false;
      left--;
      this.paid++;
      return true;
    },
  };
};

type Step =
  | { kind: "timer" }
  | { kind: "final" | "nonFatal"; pick: number; pushback?: number | null };

const steps = fc.array(
  fc.oneof(
    fc.constant<Step>({ kind: "timer" }),
    fc.record({
      kind: fc.constantFrom("final" as const, "nonFatal" as const),
      pick: fc.nat(9),
      pushback: fc.option(fc.oneof(fc.constant(null), fc.nat(100)), { nil: undefined }),
    }),
  ),
  { maxLength: 30 },
);

describe("HedgeRace (pure core)", () => {
  it("never sends more than maxAttempts, never more hedges than the budget pays, and picks exactly one answer", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), fc.nat(6), steps, (max, paid, script) => {
        const budget = budgetOf(paid);
        const race = new HedgeRace(max, budget);
        const running = new Set([0]);
        let answers = 0;
        for (const step of script) {
          if (step.kind === "timer") {
            const n = race.hedge();
            if (n !== -1) {
              expect(n).toBe(race.sent - 1);
              running.add(n);
            }
            continue;
          }
          if (running.size === 0) continue;
          const n = [...running][step.pick % running.size] as number;
          running.delete(n);
          if (step.kind === "final") {
            if (race.final(n)) answers++;
          } else {
            const next = race.nonFatal(n, step.pushback);
            if (next === "forward") {
              answers++;
              expect(running.size).toBe(0);
            }
            // "wait" reserves the attempt the owner sends after the pushback.
            if (next === "hedge" || next === "wait") running.add(race.sent - 1);
            if (step.pushback === null) expect(race.hedge()).toBe(-1);
          }
          if (race.winner !== -1) {
            // Decided: no hedge after the answer.
            expect(race.hedge()).toBe(-1);
            running.clear();
          }
        }
        expect(race.sent).toBeLessThanOrEqual(max);
        expect(race.sent - 1).toBe(budget.paid);
        expect(race.sent - 1).toBeLessThanOrEqual(paid);
        expect(answers).toBeLessThanOrEqual(1);
        expect(answers === 1).toBe(race.winner !== -1);
      }),
    );
  });

  it("with the retry budget exhausted no hedge is sent, however long the request takes", () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ retryRatio: 0, minRetriesPerSecond: 0, clock });
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), fc.nat(50), (max, timers) => {
        const race = new HedgeRace(max, budget);
        for (let i = 0; i < timers; i++) {
          clock.advance(100);
          expect(race.hedge()).toBe(-1);
        }
        expect(race.sent).toBe(1);
        expect(race.nonFatal(0)).toBe("forward");
      }),
    );
  });

  it("hedges cost what retries cost: 20 % of requests plus the reserve, over the budget's window", () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ retryRatio: 0.2, minRetriesPerSecond: 0, clock });
    let hedges = 0;
    // 1000 requests in the window, every one slow enough to want a hedge.
    for (let i = 0; i < 1000; i++) {
      budget.deposit();
      if (new HedgeRace(2, budget).hedge() !== -1) hedges++;
    }
    expect(hedges).toBe(200);
  });

  it("a non-fatal answer sends the next hedge at once, and is the answer only when nothing else may come", () => {
    const race = new HedgeRace(3, undefined);
    expect(race.nonFatal(0)).toBe("hedge"); // attempt 1 goes out without waiting
    expect(race.sent).toBe(2);
    expect(race.hedge()).toBe(2); // the delay passes: attempt 2
    expect(race.nonFatal(1)).toBe("drop"); // 2 still runs, nothing more may be sent
    expect(race.nonFatal(2)).toBe("forward");
    expect(race.winner).toBe(2);
  });
});

describe("grpc-retry-pushback-ms in a hedge race (A6)", () => {
  it("a positive pushback delays the next hedge (paid now), a negative one ends hedging", () => {
    const waiting = new HedgeRace(3, undefined);
    expect(waiting.nonFatal(0, 200)).toBe("wait");
    expect(waiting.sent).toBe(2);
    const stopped = new HedgeRace(3, undefined);
    expect(stopped.nonFatal(0, null)).toBe("forward");
    expect(stopped.sent).toBe(1);
    expect(stopped.hedge()).toBe(-1);
  });
});

describe("HedgePolicy options", () => {
  it.each([
    [{}, "hedge.delay: expected a duration in ms, got undefined"],
    [{ delay: -1 }, "hedge.delay: expected a duration in ms in 0..2147483647, got -1"],
    [{ delay: 10, maxAttempts: 9 }, "hedge.maxAttempts: expected an integer in 2..5, got 9"],
    [
      { delay: 10, grpcMethods: ["Get"] },
      'hedge.grpcMethods: expected gRPC methods like "/pkg.Service/Method" or "/pkg.Service/*", got "Get"',
    ],
    [{ delay: 10, nonFatal: { http: "6xx" } }, "hedge.nonFatal.http:"],
    [{ delay: 10, hedgingDelay: 5 }, 'did you mean "delay"'],
  ])("%j is refused: %s", (options, message) => {
    expect(() => new HedgePolicy(options as never)).toThrow(message);
  });

  it("gRPC methods match exactly or by service", () => {
    const p = new HedgePolicy({ delay: 5, grpcMethods: ["/books.Books/Get", "/shelf.Shelf/*"] });
    expect(p.allowsGrpcMethod("/books.Books/Get")).toBe(true);
    expect(p.allowsGrpcMethod("/books.Books/Delete")).toBe(false);
    expect(p.allowsGrpcMethod("/shelf.Shelf/List")).toBe(true);
  });
});
