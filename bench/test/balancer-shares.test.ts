import { describe, expect, it } from "vitest";
import { measuredShares } from "../src/scenarios/balancer.ts";

// 100 ms buckets from t=10 000: the first 2 s are warm-up, where the slow endpoint still got
// a fair share; from t=12 000 on the balancer has learnt to avoid it.
const stats = {
  sinceEpochMs: 10_000,
  bucketMs: 100,
  endpoints: [
    {
      name: "a",
      port: 1,
      requests: 0,
      failed: 0,
      timeline: [...Array(20).fill(5), ...Array(10).fill(9)],
    },
    {
      name: "slow",
      port: 2,
      requests: 0,
      failed: 0,
      timeline: [...Array(20).fill(5), ...Array(10).fill(1)],
    },
  ],
};
for (const e of stats.endpoints) e.requests = e.timeline.reduce((a, n) => a + n, 0);

describe("balancer scenario shares", () => {
  it("count only the measured window when a start is given", () => {
    expect(measuredShares(stats, 12_000)).toEqual({ a: 0.9, slow: 0.1 });
    // a start inside a bucket counts that whole bucket (the warm-up ended well before it)
    expect(measuredShares(stats, 12_050)).toEqual({ a: 0.9, slow: 0.1 });
  });

  it("count every request without a start", () => {
    expect(measuredShares(stats)).toEqual({ a: 0.6333, slow: 0.3667 });
  });

  it("give 0 for every endpoint when nothing arrived", () => {
    const idle = {
      ...stats,
      endpoints: stats.endpoints.map((e) => ({ ...e, requests: 0, timeline: [] })),
    };
    expect(measuredShares(idle, 12_000)).toEqual({ a: 0, slow: 0 });
  });
});
