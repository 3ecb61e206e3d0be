import { describe, expect, it } from "vitest";
import { GoldenSignals, quantile, snapshot, summarize } from "../src/index.js";

describe("summarize", () => {
  it("computes success rate, rps and percentiles between two snapshots", () => {
    const s = new GoldenSignals();
    const web = s.http({ direction: "outbound", authority: "web:80" });
    const other = s.http({ direction: "outbound", authority: "db:5432" });
    web.request();
    web.response(200, -1, 1);
    const filter = (l: { authority?: string }) => l.authority === "web:80";
    const before = snapshot(s.registry, 10_000, filter);
    for (let i = 0; i < 90; i++) {
      web.request();
      web.response(200, -1, 7); // bucket (5, 10]
    }
    for (let i = 0; i < 10; i++) {
      web.request();
      web.response(503, -1, 150); // bucket (100, 200]
    }
    other.request();
    other.response(500, -1, 1);
    const sum = summarize(before, snapshot(s.registry, 20_000, filter));
    expect(sum.seconds).toBe(10);
    expect(sum.responses).toBe(100);
    expect(sum.successRate).toBe(0.9);
    expect(sum.rps).toBe(10);
    expect(sum.p50).toBeCloseTo(5 + 5 * (50 / 90));
    expect(sum.p95).toBeCloseTo(100 + 100 * (5 / 10));
    expect(sum.p99).toBeCloseTo(100 + 100 * (9 / 10));
  });

  it("reports the highest bound for +Inf and NaN without data", () => {
    expect(quantile(0.5, [1, 2], [0, 0, 3])).toBe(2);
    expect(quantile(0.5, [1, 2], [0, 0, 0])).toBeNaN();
    expect(() =>
      summarize(
        snapshot(new GoldenSignals().registry, 5),
        snapshot(new GoldenSignals().registry, 5),
      ),
    ).toThrow("after.timeMs: expected a time after before.timeMs, got 5");
  });
});
