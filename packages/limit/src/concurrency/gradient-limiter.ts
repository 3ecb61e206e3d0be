import {
  type Clock,
  clockOption,
  integerIn,
  monotonicClock,
  nonEmptyString,
  numberIn,
  type OptionNames,
  optionsObject,
  randomOption,
} from "@mesh/core";
import { concurrencyLimitChannel, concurrencyRejectedChannel } from "../events.js";

/** Options of {@link GradientLimiter}; every default is Envoy's adaptive concurrency filter's. */
export interface GradientLimiterOptions {
  /** How often the limit is recomputed from the RTTs of the requests that ended, ms. Default 100. */
  sampleWindow?: number;
  /** Which RTT percentile of a window stands for it, in (0, 1]. Default 0.5 (Envoy's p50). */
  percentile?: number;
  /** Time between minRTT measurements, ms. Default 60 000. */
  minRttInterval?: number;
  /** Random spread added to `minRttInterval`, as a fraction of it, in 0..1. Default 0.15. */
  minRttJitter?: number;
  /** Requests measured in a minRTT window. Default 50. */
  minRttRequests?: number;
  /**
   * Latency above minRTT still taken as "not queueing", as a fraction of minRTT. Default
   * 0.25: the limit only shrinks once the window's RTT exceeds 1.25 × minRTT.
   */
  buffer?: number;
  /** The limit never drops below this; also the concurrency during a minRTT window. Default 3. */
  minLimit?: number;
  /** The limit never exceeds this. Default 1000. */
  maxLimit?: number;
  /** The limit before the first update. Default `minLimit`. */
  initialLimit?: number;
  /** Name carried by events. Default `"default"`. */
  name?: string;
  clock?: Clock;
  /** Random source in [0, 1) for the jitter (tests pass a seeded one). Default Math.random. */
  random?: () => number;
}

const optionNames: OptionNames = {
  known: [
    "sampleWindow",
    "percentile",
    "minRttInterval",
    "minRttJitter",
    "minRttRequests",
    "buffer",
    "minLimit",
    "maxLimit",
    "initialLimit",
    "name",
    "clock",
    "random",
  ],
  hints: {
    concurrencyUpdateInterval: "sampleWindow",
    sampleAggregatePercentile: "percentile",
    minRttCalcInterval: "minRttInterval",
    jitter: "minRttJitter",
    requestCount: "minRttRequests",
    minConcurrency: "minLimit",
    maxConcurrencyLimit: "maxLimit",
    maxConcurrency: "maxLimit",
  },
};

/** Samples kept per window; later ones overwrite the oldest (a window's percentile of its last 4096). */
const MAX_SAMPLES = 4096;

/**
 * An adaptive concurrency limit, as Envoy's adaptive concurrency filter (and Netflix's
 * Gradient limiters): no hand-tuned number, the limit follows the latency the service shows.
 *
 * - Every `sampleWindow` (100 ms) the RTTs of the requests that ended are summarised by a
 *   percentile (p50) into `sampleRtt`, and
 *   `gradient = clamp((minRtt · (1 + buffer)) / sampleRtt, 0.5, 2)`,
 *   `limit = clamp(gradient · limit + √limit, minLimit, maxLimit)`.
 *   While latency stays within the buffer the limit grows by √limit per window; once the
 *   service queues, latency rises, the gradient falls below 1 and the limit shrinks —
 *   equilibrium is where `gradient = 1 − 1/√limit`.
 * - minRTT, the latency without queueing, is measured at start and again every
 *   `minRttInterval` (60 s ± 15 % jitter, so a fleet does not measure in step): the limit is
 *   pinned to `minLimit` (3) until `minRttRequests` (50) requests that started in the
 *   window ended; minRTT is their percentile. Then the previous limit is restored.
 *
 * A request over the limit is refused at once — the limiter never queues. Pure: no timers;
 * windows advance when requests arrive or end, timed by the injected clock.
 */
export class GradientLimiter {
  readonly name: string;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #window: number;
  readonly #percentile: number;
  readonly #minRttInterval: number;
  readonly #jitter: number;
  readonly #minRttRequests: number;
  readonly #buffer: number;
  readonly #minLimit: number;
  readonly #maxLimit: number;
  #limit: number;
  #inFlight = 0;
  #minRtt = Number.NaN;
  #sampleRtt = Number.NaN;
  /** In a minRTT window: the limit to restore after it. NaN otherwise. */
  #savedLimit = Number.NaN;
  /** Start of the current window (sample or minRTT), ms. */
  #windowStart: number;
  /** When the next minRTT window begins, ms. */
  #nextMinRtt = 0;
  readonly #samples = new Float64Array(MAX_SAMPLES);
  #count = 0;

  constructor(options?: GradientLimiterOptions) {
    const o = optionsObject<GradientLimiterOptions>("concurrency", options, optionNames);
    this.#window = numberIn("concurrency.sampleWindow", o.sampleWindow, 100, 1, 3_600_000);
    this.#percentile = numberIn("concurrency.percentile", o.percentile, 0.5, 0, 1, true);
    this.#minRttInterval = numberIn(
      "concurrency.minRttInterval",
      o.minRttInterval,
      60_000,
      1,
      86_400_000,
    );
    this.#jitter = numberIn("concurrency.minRttJitter", o.minRttJitter, 0.15, 0, 1);
    this.#minRttRequests = integerIn(
      "concurrency.minRttRequests",
      o.minRttRequests,
      50,
      1,
      MAX_SAMPLES,
    );
    this.#buffer = numberIn("concurrency.buffer", o.buffer, 0.25, 0, 10);
    this.#minLimit = integerIn("concurrency.minLimit", o.minLimit, 3, 1, 1e6);
    this.#maxLimit = integerIn("concurrency.maxLimit", o.maxLimit, 1000, this.#minLimit, 1e6);
    this.#limit = numberIn(
      "concurrency.initialLimit",
      o.initialLimit,
      this.#minLimit,
      this.#minLimit,
      this.#maxLimit,
    );
    this.name = nonEmptyString("concurrency.name", o.name, "default");
    this.#clock = clockOption("concurrency.clock", o.clock, monotonicClock);
    this.#random = randomOption("concurrency.random", o.random);
    this.#windowStart = this.#clock.now();
    // Measure minRTT first: nothing is known about the service yet.
    this.#savedLimit = this.#limit;
  }

  /** The current limit on requests in flight (whole requests: `floor` of the computed value). */
  get limit(): number {
    return Number.isNaN(this.#savedLimit) ? Math.floor(this.#limit) : this.#minLimit;
  }

  /** Requests admitted and not yet released. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The latest minRTT measurement, ms (NaN before the first). */
  get minRtt(): number {
    return this.#minRtt;
  }

  /** The latest window's RTT percentile, ms (NaN before the first). */
  get sampleRtt(): number {
    return this.#sampleRtt;
  }

  /** True while a minRTT window pins the limit to `minLimit`. */
  get measuringMinRtt(): boolean {
    return !Number.isNaN(this.#savedLimit);
  }

  /**
   * Asks to admit a request. Returns its start time (pass it to {@link release}), or −1
   * when the limit is reached — refuse the request then; it must not wait.
   */
  tryAcquire(): number {
    const now = this.#clock.now();
    this.#advance(now);
    if (this.#inFlight >= this.limit) {
      if (concurrencyRejectedChannel.hasSubscribers) {
        concurrencyRejectedChannel.publish({
          name: this.name,
          limit: this.limit,
          inFlight: this.#inFlight,
        });
      }
      return -1;
    }
    this.#inFlight++;
    return now;
  }

  /**
   * A request admitted at `start` ended. `sample` false leaves its RTT out (it failed
   * before the service handled it, or was cancelled), so it does not skew the limit.
   */
  release(start: number, sample = true): void {
    if (this.#inFlight > 0) this.#inFlight--;
    const now = this.#clock.now();
    // In a minRTT window only requests that started in it count: older ones queued.
    if (sample && start >= 0 && (!this.measuringMinRtt || start >= this.#windowStart)) {
      this.#samples[this.#count % MAX_SAMPLES] = now - start;
      this.#count++;
    }
    this.#advance(now);
  }

  /** Ends the current window if it is over, and updates the limit from it. */
  #advance(now: number): void {
    if (this.measuringMinRtt) {
      if (this.#count < this.#minRttRequests) return;
      const previous = this.#limit;
      this.#minRtt = this.#percentileOfSamples();
      this.#limit = this.#savedLimit;
      this.#savedLimit = Number.NaN;
      this.#nextMinRtt = now + this.#minRttInterval * (1 + this.#jitter * this.#random());
      this.#startWindow(now);
      this.#publish(previous, Number.NaN, "min-rtt");
      return;
    }
    if (now - this.#windowStart < this.#window) return;
    if (now >= this.#nextMinRtt) {
      this.#savedLimit = this.#limit;
      this.#startWindow(now);
      return;
    }
    if (this.#count === 0) {
      this.#windowStart = now;
      return;
    }
    const sampleRtt = this.#percentileOfSamples();
    this.#sampleRtt = sampleRtt;
    const previous = this.#limit;
    this.#limit = nextLimit(
      previous,
      this.#minRtt,
      sampleRtt,
      this.#buffer,
      this.#minLimit,
      this.#maxLimit,
    );
    this.#startWindow(now);
    this.#publish(previous, sampleRtt, "sample");
  }

  #startWindow(now: number): void {
    this.#windowStart = now;
    this.#count = 0;
  }

  #percentileOfSamples(): number {
    const n = Math.min(this.#count, MAX_SAMPLES);
    const window = this.#samples.subarray(0, n).sort();
    return window[Math.max(0, Math.ceil(this.#percentile * n) - 1)] as number;
  }

  #publish(previous: number, sampleRtt: number, window: "sample" | "min-rtt"): void {
    if (!concurrencyLimitChannel.hasSubscribers) return;
    concurrencyLimitChannel.publish({
      name: this.name,
      limit: this.limit,
      previous: Math.floor(previous),
      minRttMs: this.#minRtt,
      sampleRttMs: sampleRtt,
      window,
    });
  }
}

/**
 * One gradient step: `clamp(gradient · limit + √limit, minLimit, maxLimit)` with
 * `gradient = clamp(minRtt · (1 + buffer) / sampleRtt, 0.5, 2)`. Exported for the property
 * tests; a pure function.
 */
export function nextLimit(
  limit: number,
  minRtt: number,
  sampleRtt: number,
  buffer: number,
  minLimit: number,
  maxLimit: number,
): number {
  let gradient = sampleRtt > 0 ? (minRtt * (1 + buffer)) / sampleRtt : 2;
  // NaN (no minRTT yet) counts as the lowest gradient.
  gradient = Number.isNaN(gradient) ? 0.5 : Math.min(2, Math.max(0.5, gradient));
  return Math.min(maxLimit, Math.max(minLimit, gradient * limit + Math.sqrt(limit)));
}
