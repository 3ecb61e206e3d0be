import { describe, expect, it } from "vitest";
import { PerTryTimeoutError, RetryBudget, RetryPolicy, withRetry } from "../src/index.js";
import { failFirst, http1Server } from "./support/servers.js";

const fast = { backoff: { base: 0, max: 0 }, budget: { minRetriesPerSecond: 1000 } };

describe("withRetry()", () => {
  it("retries a retryable error up to limit, then throws the last error", async () => {
    let calls = 0;
    const reset = () => Object.assign(new Error("reset"), { code: "ECONNRESET" });
    await expect(
      withRetry(
        async () => {
          calls++;
          throw reset();
        },
        { policy: { ...fast, limit: 2 } },
      ),
    ).rejects.toThrow("reset");
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new Error("bug");
        },
        { policy: fast },
      ),
    ).rejects.toThrow("bug");
    expect(calls).toBe(1);
  });

  it("retries fetch responses with a retryable status, using the shared budget", async () => {
    const s = await http1Server(failFirst(1));
    try {
      const budget = new RetryBudget({ minRetriesPerSecond: 0, retryRatio: 1 });
      const policy = new RetryPolicy({ budget, backoff: { base: 0, max: 0 } });
      const res = await withRetry(({ signal }) => fetch(s.origin, { signal }), {
        policy,
        target: s.origin,
      });
      expect(await res.text()).toBe("ok 1");
      expect(budget.state()).toMatchObject({ deposits: 1, withdrawals: 1 });
    } finally {
      await s.close();
    }
  });

  it("aborts the attempt on the per-try timeout and retries", async () => {
    const seen: number[] = [];
    const result = await withRetry(
      ({ attempt, signal }) => {
        seen.push(attempt);
        if (attempt === 0)
          return new Promise<string>((_, reject) =>
            signal.addEventListener("abort", () => reject(signal.reason)),
          );
        return Promise.resolve("second");
      },
      { policy: { ...fast, perTryTimeout: 20 } },
    );
    expect(result).toBe("second");
    expect(seen).toEqual([0, 1]);
    const err = await withRetry(() => new Promise(() => {}), {
      policy: { ...fast, perTryTimeout: 20, limit: 0 },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PerTryTimeoutError);
  });

  it("an AbortSignal ends a pending backoff at once with its reason", async () => {
    const ac = new AbortController();
    const pending = withRetry(
      async () => {
        setImmediate(() => ac.abort(new Error("caller stop")));
        throw Object.assign(new Error("refused"), { code: "ECONNREFUSED" });
      },
      { signal: ac.signal, policy: { backoff: { base: 60_000, max: 60_000, random: () => 0.99 } } },
    );
    await expect(pending).rejects.toThrow("caller stop");
  });

  it("validates its arguments", async () => {
    await expect(withRetry("x" as never)).rejects.toThrow(
      'withRetry fn: expected a function, got "x"',
    );
    await expect(withRetry(async () => 1, { signal: {} as never })).rejects.toThrow(TypeError);
  });
});
