import { describe, expect, it } from "vitest";
import {
  CircuitBreakers,
  circuitBreaker,
  RetryBudget,
  RetryPolicy,
  retry,
  timeout,
  withRetry,
} from "../src/index.js";

// Options given under a name we do not know would otherwise be ignored in silence: a user who
// writes `retryOn` (Envoy's name) gets the default statuses and never learns why.
describe("unknown option names are rejected, with the close match", () => {
  it("retry() and RetryPolicy name the option and suggest ours for a foreign name", () => {
    const bad = { retryOn: ["5xx"] } as never;
    expect(() => retry(bad)).toThrow(
      new TypeError('retry: unknown option "retryOn" (did you mean "http"?)'),
    );
    expect(() => new RetryPolicy(bad)).toThrow(TypeError);
    expect(() => retry({ maxRetries: 3 } as never)).toThrow(
      'retry: unknown option "maxRetries" (did you mean "limit"?)',
    );
    expect(() => retry({ minTimeout: 25 } as never)).toThrow(
      'retry: unknown option "minTimeout" (did you mean "backoff.base"?)',
    );
  });

  it("suggests the nearest name for a typo or a different case", () => {
    expect(() => retry({ perTryTimout: 100 } as never)).toThrow(
      'retry: unknown option "perTryTimout" (did you mean "perTryTimeout"?)',
    );
    expect(() => retry({ Limit: 2 } as never)).toThrow(
      'retry: unknown option "Limit" (did you mean "limit"?)',
    );
    expect(() => retry({ limt: 2 } as never)).toThrow('(did you mean "limit"?)');
  });

  it("lists the known options when nothing is close", () => {
    expect(() => timeout({ zzzzzz: 1 } as never)).toThrow(
      'timeout: unknown option "zzzzzz" (known options: request, deadline, idle, name, clock, timers)',
    );
  });

  it("checks nested backoff and budget options too", () => {
    expect(() => retry({ backoff: { min: 10 } } as never)).toThrow(
      'retry.backoff: unknown option "min" (did you mean "base"?)',
    );
    expect(() => retry({ budget: { ratio: 0.1 } } as never)).toThrow(
      'budget: unknown option "ratio" (did you mean "retryRatio"?)',
    );
    expect(() => new RetryBudget({ minRetriesPerSec: 5 } as never)).toThrow(
      'budget: unknown option "minRetriesPerSec" (did you mean "minRetriesPerSecond"?)',
    );
  });

  it("timeout() and circuitBreaker() point at where a misplaced option belongs", () => {
    expect(() => timeout({ perTryTimeout: 100 } as never)).toThrow(
      'timeout: unknown option "perTryTimeout" (did you mean retry({ perTryTimeout })?)',
    );
    expect(() => timeout({ idleTimeout: 100 } as never)).toThrow('(did you mean "idle"?)');
    expect(() => circuitBreaker({ resetTimout: 1000 } as never)).toThrow(
      'circuitBreaker: unknown option "resetTimout" (did you mean "resetTimeout"?)',
    );
    expect(() => new CircuitBreakers({ timeout: 1000 } as never)).toThrow(
      "circuitBreaker: unknown option",
    );
  });

  it("withRetry() sends policy options to `policy`", async () => {
    await expect(withRetry(async () => 1, { limit: 2 } as never)).rejects.toThrow(
      'withRetry: unknown option "limit" (did you mean "policy.limit"?)',
    );
    await expect(withRetry(async () => 1, { retryOn: "5xx" } as never)).rejects.toThrow(
      '(did you mean "policy.http"?)',
    );
    await expect(withRetry(async () => 1, { policy: { retries: 1 } } as never)).rejects.toThrow(
      'retry: unknown option "retries" (did you mean "limit"?)',
    );
  });

  it("accepts every documented option", () => {
    expect(
      () =>
        new RetryPolicy({
          name: "n",
          limit: 2,
          http: "5xx",
          grpc: [],
          errorCodes: ["ECONNRESET"],
          methods: ["GET"],
          retryNonIdempotent: false,
          perTryTimeout: 100,
          retryOnPerTryTimeout: true,
          maxReplayBytes: 10,
          backoff: { base: 1, max: 2, random: () => 0 },
          retryAfterMax: 100,
          budget: {
            name: "b",
            retryRatio: 0.5,
            minRetriesPerSecond: 1,
            ttl: 1000,
            clock: { now: () => 0 },
          },
        }),
    ).not.toThrow();
    expect(() => timeout({ request: 1, idle: 1, name: "t" })).not.toThrow();
    const b = circuitBreaker({
      errorThresholdPercentage: 50,
      volumeThreshold: 1,
      resetTimeout: 10,
      rollingCountTimeout: 1000,
      rollingCountBuckets: 10,
      failureStatuses: "5xx",
    });
    b.shutdown();
  });
});
