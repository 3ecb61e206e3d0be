import { duration, numberIn, optionsObject } from "@mesh/core";

/**
 * Options for pushback: how the balancer treats an endpoint whose response asked its
 * clients to back off (`Retry-After`, `grpc-retry-pushback-ms`). Durations in ms.
 */
export interface PushbackOptions {
  /** Longest pushback honoured; longer requests are capped to it. Default 10 000 ms (as `@mesh/retry`'s `retryAfterMax`). */
  maxMs?: number;
  /** Multiplier on the endpoint's cost while it is pushed back, >= 1. Default 1000. */
  costFactor?: number;
}

/** Resolved, validated {@link PushbackOptions}. */
export interface PushbackConfig {
  readonly maxMs: number;
  readonly costFactor: number;
}

/** Validates {@link PushbackOptions}; `false` turns pushback off (`maxMs` 0). */
export function pushbackConfig(
  options: PushbackOptions | false | undefined,
  path = "pushback",
): PushbackConfig {
  if (options === false) return Object.freeze({ maxMs: 0, costFactor: 1 });
  const o = optionsObject(path, options, { known: ["maxMs", "costFactor"], hints: {} });
  return Object.freeze({
    maxMs: duration(`${path}.maxMs`, o.maxMs, 10_000),
    costFactor: numberIn(`${path}.costFactor`, o.costFactor, 1_000, 1, 1e12),
  });
}
