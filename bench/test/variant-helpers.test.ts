/** The helpers the scenarios share for their variants: availability, failures, notes, rows. */
import { describe, expect, it } from "vitest";
import { splitAvailable, spreadRows, statusNote } from "../src/lib/result.ts";
import { LoadWorkerError, runFailureReason } from "../src/lib/runners.ts";

describe("variant helpers", () => {
  it("splits variants into runnable ones and unavailable statuses with their reason", async () => {
    const v = (name: string, reason: string | null) => ({
      name,
      describe: `${name} variant`,
      unavailable: async () => reason,
    });
    const { peers, active } = await splitAvailable([
      v("a", null),
      v("b", "not built"),
      v("c", null),
    ]);
    expect(active.map((x) => x.name)).toEqual(["a", "c"]);
    expect(peers).toEqual([
      { name: "b", describe: "b variant", status: "unavailable", reason: "not built" },
    ]);
    expect(statusNote(peers, "b")).toBe("b unavailable: not built");
    expect(statusNote(peers, "a")).toBeUndefined();
  });

  it("reports a worker's reason when it gave one, else the message", () => {
    expect(runFailureReason(new LoadWorkerError("boom", "@mesh/retry is not built"))).toBe(
      "@mesh/retry is not built",
    );
    expect(runFailureReason(new LoadWorkerError("boom"))).toBe("boom");
    expect(runFailureReason(new Error("refused"))).toBe("refused");
  });

  it("formats one row per variant, a spread per column", () => {
    const one = { median: 2, min: 2, max: 2, n: 1 };
    const range = { median: 2, min: 1, max: 3, n: 3 };
    expect(
      spreadRows({ x: { rps: one, p99: range } }, [
        ["rps", 0],
        ["p99", 1],
      ]),
    ).toEqual([["x", "2", "2.0 (1.0–3.0)"]]);
  });
});
