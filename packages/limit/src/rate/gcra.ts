import { numberIn, type OptionNames, optionsObject } from "@mesh/core";

/** One rate: a sustained number of requests per second and how many may arrive at once. */
export interface Rate {
  /** Sustained rate, requests per second (fractions allowed: 0.5 is one request every 2 s). */
  requestsPerSecond: number;
  /**
   * Requests admitted back to back after an idle period. Default: one second's worth,
   * `max(1, requestsPerSecond)` — what Linkerd's local rate limit (a `governor` quota per
   * second) allows.
   */
  burst?: number;
}

export const rateNames: OptionNames = {
  known: ["requestsPerSecond", "burst"],
  hints: { rps: "requestsPerSecond", rate: "requestsPerSecond", limit: "requestsPerSecond" },
};

/**
 * The constants of one GCRA limit: the emission interval `T` (ms between requests at the
 * sustained rate) and the tolerance `tau` (how far ahead of schedule a request may be).
 * The state of a key is one number, its theoretical arrival time (TAT).
 */
export class Gcra {
  /** Emission interval T, ms. */
  readonly interval: number;
  /** Tolerance τ = (burst − 1)·T, ms. */
  readonly tolerance: number;
  readonly requestsPerSecond: number;
  readonly burst: number;

  constructor(path: string, rate: unknown) {
    const o = optionsObject<Rate>(path, rate as Rate | undefined, rateNames);
    if (rate === undefined)
      throw new TypeError(`${path}: expected a rate { requestsPerSecond }, got undefined`);
    if (o.requestsPerSecond === undefined) {
      throw new TypeError(`${path}.requestsPerSecond: expected a number > 0, got undefined`);
    }
    this.requestsPerSecond = numberIn(
      `${path}.requestsPerSecond`,
      o.requestsPerSecond,
      1,
      0,
      1e9,
      true,
    );
    this.burst = numberIn(`${path}.burst`, o.burst, Math.max(1, this.requestsPerSecond), 1, 1e9);
    this.interval = 1000 / this.requestsPerSecond;
    this.tolerance = (this.burst - 1) * this.interval;
  }

  /**
   * How long a request arriving at `now` must wait to conform, given the key's TAT: 0 when
   * it conforms now. A fresh key has TAT −∞ (any TAT ≤ now behaves the same).
   */
  wait(tat: number, now: number): number {
    const allowAt = tat - this.tolerance;
    return allowAt > now ? allowAt - now : 0;
  }

  /** The key's TAT after admitting a request at `now`. */
  next(tat: number, now: number): number {
    return Math.max(tat, now) + this.interval;
  }
}
