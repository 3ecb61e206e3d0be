import { duration, numberIn, optionsObject } from "@mesh/core";

/** Options for {@link FailureRate}. All durations in milliseconds. */
export interface FailureRateOptions {
  /**
   * Time constant of the exponential decay of the failure and response counts. Default
   * 5 000 ms: one isolated failure at 1 rps is forgotten within ~10 s (with 10 s, as long as the
   * RTT decay, the endpoint got under half its traffic for ~30 s), while an endpoint failing
   * every 2nd or 3rd request still gets well under 1 % of the traffic at 300 rps.
   */
  decayMs?: number;
  /**
   * Pseudo-successes added to the response count when the rate is read. Default 10: one
   * isolated failure at low traffic reads as at most 1/11, while a sustained rate over real
   * traffic converges to the true rate. 0 reads the raw decayed ratio.
   */
  prior?: number;
  /**
   * `k` in the cost multiplier `exp(k × rate)`. Default 15: a rate of 10 % multiplies the cost
   * by ~4.5 (a 10 ms endpoint failing 10 % still beats a healthy 100 ms one), 1/3 by ~148 and
   * 1/2 by ~1800 (an endpoint failing every 2nd or 3rd request in 1 ms costs more than a
   * healthy 50 ms one). 0 leaves failures out of the cost.
   */
  failureCostFactor?: number;
}

/** Resolved, validated {@link FailureRateOptions}. */
export interface FailureRateConfig {
  readonly decayMs: number;
  readonly prior: number;
  readonly failureCostFactor: number;
}

/** Below `prior × FORGET` the decayed failure count is dropped: it moves the rate by less. */
const FORGET = 1e-9;

/** Validates {@link FailureRateOptions}; errors name `path.<field>`. */
export function failureRateConfig(
  options: FailureRateOptions | undefined,
  path = "failureRate",
): FailureRateConfig {
  const o = optionsObject(path, options);
  return Object.freeze({
    decayMs: duration(`${path}.decayMs`, o.decayMs, 5_000, 1),
    prior: numberIn(`${path}.prior`, o.prior, 10, 0, 1_000_000),
    failureCostFactor: numberIn(`${path}.failureCostFactor`, o.failureCostFactor, 15, 0, 100),
  });
}

/**
 * Time-decayed failure rate of one endpoint. Keeps two counts, failures `F` and responses `N`;
 * each observation first decays both by `w = exp(−Δt / decay)`, then adds itself
 * (`F += failed ? 1 : 0`, `N += 1`). The rate read at `now` is `F·w / (N·w + prior)`, where
 * `prior` pseudo-successes keep a single failure at low traffic from reading as 100 %.
 *
 * Failures stay out of the RTT estimate ({@link PeakEwma} takes them as ordinary samples);
 * they raise the cost through {@link FailureRate.costMultiplier} instead, which does not
 * compound the way repeated peak penalties do.
 *
 * The failures since the last success (the current run), decayed alike, are counted apart
 * too: {@link FailureRate.inOutage} tells an endpoint that was healthy until it began failing
 * (down, restarting) from one that fails every few requests.
 *
 * Reading is pure: `rate(now)` does not change state. Time is passed in (ms, any monotonic
 * clock); a `now` earlier than the last observation is treated as that observation's time.
 */
export class FailureRate {
  #failures = 0;
  #responses = 0;
  /** The decayed failures since the last success (a part of `#failures`). */
  #run = 0;
  #stamp: number;
  readonly #config: FailureRateConfig;

  /**
   * @param now time of creation.
   * @param options validated with {@link failureRateConfig} unless already a config.
   */
  constructor(now: number, options?: FailureRateOptions | FailureRateConfig) {
    this.#config = isConfig(options) ? options : failureRateConfig(options);
    this.#stamp = now;
  }

  /** The configuration in use. */
  get config(): FailureRateConfig {
    return this.#config;
  }

  /** Decayed failure rate in [0, 1] at `now`: `F·w / (N·w + prior)`. */
  rate(now: number): number {
    const failures = this.#failures;
    if (failures === 0) return 0;
    const elapsed = now - this.#stamp;
    if (elapsed <= 0) return failures / (this.#responses + this.#config.prior);
    const w = Math.exp(-elapsed / this.#config.decayMs);
    return (failures * w) / (this.#responses * w + this.#config.prior);
  }

  /** Cost multiplier at `now`: `exp(failureCostFactor × rate(now))`; exactly 1 without failures. */
  costMultiplier(now: number): number {
    if (this.#failures === 0) return 1;
    const k = this.#config.failureCostFactor;
    return k === 0 ? 1 : Math.exp(k * this.rate(now));
  }

  /**
   * Whether the last outcome was a failure and the failures before that run, decayed to
   * `now`, add up to less than half a failure (one failure more than `decayMs × ln 2` ago):
   * the endpoint was healthy until the run began, as when it went down or restarts. Not true
   * of an endpoint that also failed shortly before the run (one that fails every few requests
   * at real traffic).
   */
  inOutage(now: number): boolean {
    const run = this.#run;
    if (run === 0) return false;
    const elapsed = now - this.#stamp;
    const w = elapsed > 0 ? Math.exp(-elapsed / this.#config.decayMs) : 1;
    return (this.#failures - run) * w < 0.5;
  }

  /** Records one response (or transport error) completed at `now`; `failed` when it failed. */
  observe(failed: boolean, now: number): void {
    this.#decay(now);
    if (failed) {
      this.#failures += 1;
      this.#run += 1;
    } else {
      this.#run = 0;
    }
    this.#responses += 1;
  }

  /** Forgets history (used when an ejected endpoint is restored). */
  reset(now: number): void {
    this.#failures = 0;
    this.#responses = 0;
    this.#run = 0;
    this.#stamp = now;
  }

  #decay(now: number): void {
    const elapsed = now - this.#stamp;
    if (elapsed <= 0) return;
    const w = Math.exp(-elapsed / this.#config.decayMs);
    this.#failures *= w;
    this.#responses *= w;
    this.#run *= w;
    this.#stamp = now;
    if (this.#failures < this.#config.prior * FORGET) this.#failures = this.#run = 0;
  }
}

function isConfig(o: FailureRateOptions | FailureRateConfig | undefined): o is FailureRateConfig {
  return (
    o !== undefined &&
    Object.isFrozen(o) &&
    typeof o.decayMs === "number" &&
    typeof o.prior === "number" &&
    typeof o.failureCostFactor === "number"
  );
}
