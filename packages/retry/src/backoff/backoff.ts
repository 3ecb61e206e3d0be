import { numberIn, type OptionNames, optionsObject, randomOption } from "@mesh/core";

/** Options of {@link Backoff}. Defaults are Linkerd's (25 ms → 250 ms, full jitter). */
export interface BackoffOptions {
  /** Ceiling of the first retry's delay, in ms. Default 25. */
  base?: number;
  /** Largest ceiling, in ms. Default 250. */
  max?: number;
  /** Source of randomness in [0, 1). Default `Math.random`. */
  random?: () => number;
}

const backoffOptionNames: OptionNames = {
  known: ["base", "max", "random"],
  hints: {
    min: "base",
    minDelay: "base",
    minTimeout: "base",
    initial: "base",
    maxDelay: "max",
    maxTimeout: "max",
  },
};

/**
 * Exponential backoff with full jitter: the delay before retry `n` (1-based) is uniform in
 * `[0, min(max, base × 2^(n-1)))`.
 */
export class Backoff {
  readonly base: number;
  readonly max: number;
  readonly #random: () => number;

  constructor(options?: BackoffOptions, path = "backoff") {
    const o = optionsObject<BackoffOptions>(path, options, backoffOptionNames);
    this.base = numberIn(`${path}.base`, o.base, 25, 0, 3_600_000);
    this.max = numberIn(`${path}.max`, o.max, 250, 0, 3_600_000);
    if (this.max < this.base) {
      throw new RangeError(
        `${path}.max: expected a number >= ${path}.base (${this.base}), got ${this.max}`,
      );
    }
    this.#random = randomOption(`${path}.random`, o.random);
  }

  /** The delay in ms before retry number `retry` (1 for the first retry). */
  delay(retry: number): number {
    const ceiling = Math.min(this.max, this.base * 2 ** Math.max(0, retry - 1));
    return Math.floor(this.#random() * ceiling);
  }
}

// The header parsers live in @mesh/core (the balancer reads the same headers); re-exported
// here, where they have always been public.
export { parseGrpcPushback, parseRetryAfter } from "@mesh/core";
