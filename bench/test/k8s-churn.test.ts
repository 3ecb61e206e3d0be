/** The k8s-churn scenario's pure parts: the rollout's update order and its sizes. */
import { describe, expect, it } from "vitest";
import { parseArgs } from "../src/cli.ts";
import { churnSize, PER_SLICE, rolloutSchedule } from "../src/scenarios/k8s-churn.ts";

describe("k8s-churn", () => {
  it("replaces every slice: new one ready, old one terminating, old one deleted after the lag", () => {
    const schedule = rolloutSchedule(4, 2);
    expect(schedule.map((u) => `${u.kind[0]}${u.slice}`).join(" ")).toBe(
      "a0 t0 a1 t1 a2 t2 d0 a3 t3 d1 d2 d3",
    );
    for (const slices of [1, 5, 100]) {
      const s = rolloutSchedule(slices);
      expect(s).toHaveLength(3 * slices);
      for (let i = 0; i < slices; i++) {
        const at = (kind: string) => s.findIndex((u) => u.kind === kind && u.slice === i);
        expect(at("add")).toBeLessThan(at("terminate"));
        expect(at("terminate")).toBeLessThan(at("delete"));
      }
    }
  });

  it("takes its sizes from the command line, small defaults with --quick", () => {
    expect(churnSize({ quick: false })).toEqual({
      endpoints: 1000,
      rate: 1000,
      updateRate: 10,
      steadyMs: 10_000,
    });
    expect(churnSize({ quick: true }).endpoints).toBe(50);
    const opts = parseArgs(
      "k8s-churn --endpoints 200 --rate 500 --update-rate 20 --duration 3".split(" "),
    );
    if (opts === "help") throw new Error("unexpected help");
    expect(churnSize({ quick: false, params: opts.params })).toEqual({
      endpoints: 200,
      rate: 500,
      updateRate: 20,
      steadyMs: 3000,
    });
    expect(() => churnSize({ quick: false, params: { endpoints: 15 } })).toThrow(
      `--endpoints: expected a multiple of ${PER_SLICE} (endpoints per EndpointSlice), got 15`,
    );
    expect(() => parseArgs(["--endpoints", "15"])).toThrow(
      "--endpoints: expected an integer in 10..10000, a multiple of 10, got 15",
    );
    expect(() => parseArgs(["--update-rate", "0"])).toThrow(
      "--update-rate: expected an integer in 1..1000, got 0",
    );
  });
});
