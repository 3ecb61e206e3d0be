import { duration, numberIn, optionsObject, typeError } from "@mesh/core";

/** Options for {@link PeakEwma}. All durations in milliseconds. */
export interface PeakEwmaOptions {
  /** Time constant of the exponential decay. Default 10 000 ms (Linkerd). */
  decayMs?: number;
  /** Estimate a new endpoint starts with. Default 30 ms; at least `floorMs`. */
  defaultRttMs?: number;
  /** The estimate never drops below this. Default 1 ms (Linkerd's minimum default RTT). */
  floorMs?: number;
}

/** Resolved, validated {@link PeakEwmaOptions}. */
export interface PeakEwmaConfig {
  readonly decayMs: number;
  readonly defaultRttMs: number;
  readonly floorMs: number;
}

/** Upper bound for the estimate (one minute). */
const CEILING_MS = 60_000;

/** Validates {@link PeakEwmaOptions}; errors name `path.<field>`. */
export function peakEwmaConfig(
  options: PeakEwmaOptions | undefined,
  path = "ewma",
): PeakEwmaConfig {
  const o = optionsObject(path, options);
  const removed = (o as { failurePenalty?: unknown }).failurePenalty;
  if (removed !== undefined) {
    // Removed in 0.x: failures no longer multiply the RTT estimate.
    throw typeError(
      `${path}.failurePenalty`,
      "no value (removed: failures raise cost through failureRate.failureCostFactor)",
      removed,
    );
  }
  const floorMs = numberIn(`${path}.floorMs`, o.floorMs, 1, 0, CEILING_MS, true);
  return Object.freeze({
    decayMs: duration(`${path}.decayMs`, o.decayMs, 10_000, 1),
    floorMs,
    defaultRttMs: duration(
      `${path}.defaultRttMs`,
      o.defaultRttMs,
      Math.max(30, floorMs),
      floorMs,
      CEILING_MS,
    ),
  });
}

/**
 * Peak-sensitive exponentially weighted moving average of round-trip time, the load estimate
 * behind P2C. A sample slower than the current estimate replaces it at once; faster samples
 * decay into it with weight `1 - exp(-elapsed / decay)`. Between samples the estimate decays
 * towards the floor, so an endpoint that stopped receiving traffic is eventually tried again.
 *
 * A new endpoint's default RTT blends out over about one decay period, like the endpoints
 * already in the set, so endpoints added by a rollout compete on equal terms with old ones.
 *
 * Failed responses are ordinary samples here, exactly as in Linkerd and tower: failures raise
 * an endpoint's cost through their `FailureRate`, not through this estimate.
 *
 * Reading is pure: `estimate(now)` does not change state, so how often costs are read never
 * changes the math. Time is passed in (milliseconds from any monotonic clock).
 */
export class PeakEwma {
  #estimate: number;
  #stamp: number;
  #last: number | undefined;
  readonly #config: PeakEwmaConfig;

  /**
   * @param now time of creation; the default RTT is the estimate at this instant.
   * @param options validated with {@link peakEwmaConfig} unless already a config.
   */
  constructor(now: number, options?: PeakEwmaOptions | PeakEwmaConfig) {
    this.#config = isConfig(options) ? options : peakEwmaConfig(options);
    this.#estimate = this.#config.defaultRttMs;
    this.#stamp = now;
  }

  /** The configuration in use. */
  get config(): PeakEwmaConfig {
    return this.#config;
  }

  /** Current RTT estimate in ms at time `now`. */
  estimate(now: number): number {
    const elapsed = now - this.#stamp;
    const value =
      elapsed > 0 ? this.#estimate * Math.exp(-elapsed / this.#config.decayMs) : this.#estimate;
    return Math.max(value, this.#config.floorMs);
  }

  /** Load cost at `now` with `pending` requests in flight: `estimate × (pending + 1)`. */
  cost(pending: number, now: number): number {
    return this.estimate(now) * (pending + 1);
  }

  /** Records a round trip of `rttMs` (to the response headers or the error) completed at `now`. */
  observe(rttMs: number, now: number): void {
    const elapsed = now - this.#stamp;
    const weight = elapsed > 0 ? Math.exp(-elapsed / this.#config.decayMs) : 1;
    const current = this.#estimate * weight;
    const sample = Math.max(rttMs, 0);
    this.#last = sample;
    this.#estimate = sample > current ? sample : current + sample * (1 - weight);
    if (this.#estimate < this.#config.floorMs) this.#estimate = this.#config.floorMs;
    if (this.#estimate > CEILING_MS) this.#estimate = CEILING_MS;
    if (now > this.#stamp) this.#stamp = now;
  }

  /** The last round trip observed (ms), or `undefined` before the first. */
  get lastSampleMs(): number | undefined {
    return this.#last;
  }

  /**
   * Forgets history and starts again from `estimateMs` (default: the default RTT), kept
   * within the floor and the one-minute ceiling. Used when an endpoint is restored after an
   * outage, with the round trip of the probe that restored it.
   */
  reset(now: number, estimateMs = this.#config.defaultRttMs): void {
    this.#estimate = Math.min(Math.max(estimateMs, this.#config.floorMs), CEILING_MS);
    this.#stamp = now;
  }
}

function isConfig(o: PeakEwmaOptions | PeakEwmaConfig | undefined): o is PeakEwmaConfig {
  return (
    o !== undefined &&
    Object.isFrozen(o) &&
    typeof o.decayMs === "number" &&
    typeof o.defaultRttMs === "number"
  );
}
