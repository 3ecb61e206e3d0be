import fc from "fast-check";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { Balancer, seededRandom, TrafficSplit, WeightedChoice } from "../src/index.js";
import { startServer } from "./helpers.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

describe("weighted split", () => {
  it("property: shares converge to the weights (seeded)", () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 2, maxLength: 5 }),
        (seed, weights) => {
          const choice = new WeightedChoice(
            weights.map((w, i) => ({ value: i, weight: w })),
            seededRandom(seed),
          );
          const n = 20_000;
          const counts = weights.map(() => 0);
          for (let k = 0; k < n; k++) counts[choice.pick()]!++;
          const total = weights.reduce((a, b) => a + b, 0);
          weights.forEach((w, i) => {
            expect(Math.abs(counts[i]! / n - w / total)).toBeLessThan(0.02);
          });
        },
      ),
      { numRuns: 30 },
    );
  });

  it("a weight of 0 turns a backend off; all zero is rejected", () => {
    const choice = new WeightedChoice([
      { value: "a", weight: 0 },
      { value: "b", weight: 1 },
    ]);
    for (let i = 0; i < 100; i++) expect(choice.pick()).toBe("b");
    expect(() => choice.setWeights([{ value: "a", weight: 0 }])).toThrow(
      "backends: expected at least one weight > 0, got all 0",
    );
    expect(() => choice.setWeights([{ value: "a", weight: -1 }])).toThrow(
      "backends[0].weight: expected a number in 0..1000000000, got -1",
    );
  });

  it("splits real traffic 90/10 across two balancers and re-weights live", async () => {
    const [stable, canary] = await Promise.all([startServer(), startServer()]);
    cleanup.push(
      () => stable.close(),
      () => canary.close(),
    );
    const split = new TrafficSplit({
      random: seededRandom(42),
      backends: [
        {
          name: "stable",
          weight: 90,
          dispatcher: new Balancer({ name: "stable", endpoints: [stable.address] }),
        },
        {
          name: "canary",
          weight: 10,
          dispatcher: new Balancer({ name: "canary", endpoints: [canary.address] }),
        },
      ],
    });
    cleanup.push(() => split.destroy());
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await request("http://svc/", { dispatcher: split });
        await r.body.text();
      }
    };
    await run(400);
    expect(canary.hits / 400).toBeGreaterThan(0.05);
    expect(canary.hits / 400).toBeLessThan(0.15);
    split.setWeights({ stable: 0, canary: 1 });
    const before = stable.hits;
    await run(50);
    expect(stable.hits).toBe(before);
    expect(() => split.setWeights({ nope: 1 })).toThrow(
      'weights.nope: expected a known backend name, got "nope"',
    );
  });
});
