import { duration, numberIn, objectOrEmpty } from "../validate.js";

/** Options for {@link PeakEwma}. All durations in milliseconds. */
export interface PeakEwmaOptions {
  /** Time constant of the exponential decay. Default 10 000 ms (Linkerd). */
  decayMs?: number;
  /** Estimate a new endpoint starts with. Default 30 ms; at least `floorMs`. */
  defaultRttMs?: number;
  /** The estimate never drops below this. Default 1 ms (Linkerd's minimum default RTT). */
  floorMs?: number;
  /**
   * How a failure is folded into the estimate: a failed response counts as a peak sample of
   * `max(observed RTT, current estimate × failurePenalty)`. Default 2, so every failure at
   * least doubles the estimate and a fast-failing endpoint stops looking cheap. 1 disables it.
   */
  failurePenalty?: number;
}

/** Resolved, validated {@link PeakEwmaOptions}. */
export interface PeakEwmaConfig {
  readonly decayMs: number;
  readonly defaultRttMs: number;
  readonly floorMs: number;
  readonly failurePenalty: number;
}

/** Upper bound for the estimate so repeated failure penalties stay finite. */
const CEILING_MS = 60_000;

/** Validates {@link PeakEwmaOptions}; errors name `path.<field>`. */
export function peakEwmaConfig(
  options: PeakEwmaOptions | undefined,
  path = "ewma",
): PeakEwmaConfig {
  const o = objectOrEmpty(path, options);
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
    failurePenalty: numberIn(`${path}.failurePenalty`, o.failurePenalty, 2, 1, 1000),
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
 * Reading is pure: `estimate(now)` does not change state, so how often costs are read never
 * changes the math. Time is passed in (milliseconds from any monotonic clock).
 */
export class PeakEwma {
  #estimate: number;
  #stamp: number;
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

  /** Records a successful round trip of `rttMs` completed at `now`. */
  observe(rttMs: number, now: number): void {
    const elapsed = now - this.#stamp;
    const weight = elapsed > 0 ? Math.exp(-elapsed / this.#config.decayMs) : 1;
    const current = this.#estimate * weight;
    const sample = Math.max(rttMs, 0);
    this.#estimate = sample > current ? sample : current + sample * (1 - weight);
    if (this.#estimate < this.#config.floorMs) this.#estimate = this.#config.floorMs;
    if (this.#estimate > CEILING_MS) this.#estimate = CEILING_MS;
    if (now > this.#stamp) this.#stamp = now;
  }

  /**
   * Records a failed round trip: a peak sample of `max(rttMs, estimate × failurePenalty)`,
   * so failing fast never makes an endpoint look cheaper.
   */
  observeFailure(rttMs: number, now: number): void {
    const penalised = this.estimate(now) * this.#config.failurePenalty;
    this.observe(Math.max(rttMs, penalised), now);
  }

  /** Forgets history and starts again from the default RTT (used when an endpoint is restored). */
  reset(now: number): void {
    this.#estimate = this.#config.defaultRttMs;
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
