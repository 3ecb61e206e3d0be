import { duration, integerIn, numberIn, optionsObject, typeError } from "@mesh/core";
import type { Random } from "../random.js";

/** What ejects an endpoint. */
export type AccrualMode = "consecutive-failures" | "success-rate";

/** Options for failure accrual (Linkerd defaults). Durations in milliseconds. */
export interface FailureAccrualOptions {
  /**
   * `consecutive-failures` (default, Linkerd's): N failures in a row eject. `success-rate`
   * (linkerd2 #15374's "unified" breaker): a windowed success rate below `successRate.threshold`,
   * over at least `successRate.minRequests` requests, ejects. Both recover through probes
   * after an exponential backoff, one success restoring; in `success-rate` mode the restore
   * is on probation (window kept, penalty growing until a healthy window: see
   * {@link FailureAccrual}).
   */
  mode?: AccrualMode;
  /** Consecutive failures that eject an endpoint (`consecutive-failures` mode). Default 7. */
  consecutiveFailures?: number;
  /** The `success-rate` mode's window. */
  successRate?: {
    /** Success rate below which the endpoint is ejected, in 0..1. Default 0.8. */
    threshold?: number;
    /** Requests the window must hold before the rate counts. Default 20. */
    minRequests?: number;
    /** Window length, ms (kept in 10 slots). Default 10 000. */
    windowMs?: number;
  };
  /** First ejection penalty before a probe. Default 1 000 ms. */
  minPenaltyMs?: number;
  /** Penalty cap for repeated ejections. Default 60 000 ms. */
  maxPenaltyMs?: number;
  /** Random extra of up to `jitter × penalty`, in 0..1. Default 0.5. */
  jitter?: number;
}

/** Resolved, validated {@link FailureAccrualOptions}. */
export interface FailureAccrualConfig {
  readonly mode: AccrualMode;
  readonly consecutiveFailures: number;
  readonly successRate: {
    readonly threshold: number;
    readonly minRequests: number;
    readonly windowMs: number;
  };
  readonly minPenaltyMs: number;
  readonly maxPenaltyMs: number;
  readonly jitter: number;
}

/** Validates {@link FailureAccrualOptions}; errors name `path.<field>`. */
export function failureAccrualConfig(
  options: FailureAccrualOptions | undefined,
  path = "accrual",
): FailureAccrualConfig {
  const o = optionsObject(path, options);
  const mode = o.mode ?? "consecutive-failures";
  if (mode !== "consecutive-failures" && mode !== "success-rate")
    throw typeError(`${path}.mode`, '"consecutive-failures" or "success-rate"', mode);
  const sr = optionsObject(`${path}.successRate`, o.successRate, {
    known: ["threshold", "minRequests", "windowMs"],
    hints: { minimumHosts: "minRequests", requestVolume: "minRequests", interval: "windowMs" },
  });
  const successRate = Object.freeze({
    threshold: numberIn(`${path}.successRate.threshold`, sr.threshold, 0.8, 0, 1),
    minRequests: integerIn(`${path}.successRate.minRequests`, sr.minRequests, 20, 1, 1_000_000),
    windowMs: duration(`${path}.successRate.windowMs`, sr.windowMs, 10_000, 10),
  });
  const minPenaltyMs = duration(`${path}.minPenaltyMs`, o.minPenaltyMs, 1_000, 0);
  const maxPenaltyMs = duration(
    `${path}.maxPenaltyMs`,
    o.maxPenaltyMs,
    Math.max(60_000, minPenaltyMs),
  );
  if (maxPenaltyMs < minPenaltyMs) {
    throw new RangeError(
      `${path}.maxPenaltyMs: expected a duration >= minPenaltyMs (${minPenaltyMs}), got ${maxPenaltyMs}`,
    );
  }
  return Object.freeze({
    mode,
    successRate,
    consecutiveFailures: integerIn(
      `${path}.consecutiveFailures`,
      o.consecutiveFailures,
      7,
      1,
      1_000_000,
    ),
    minPenaltyMs,
    maxPenaltyMs,
    jitter: numberIn(`${path}.jitter`, o.jitter, 0.5, 0, 1),
  });
}

/** Accrual state of one endpoint. */
export type AccrualState = "ready" | "ejected" | "probing";

const SLOTS = 10;

/**
 * Successes and failures over a sliding window of `windowMs`, kept in 10 slots (the slot
 * being filled plus the 9 before it), with no timers: time comes with each call.
 */
export class SuccessWindow {
  readonly #slotMs: number;
  readonly #ok = new Float64Array(SLOTS);
  readonly #failed = new Float64Array(SLOTS);
  #slot = Number.NEGATIVE_INFINITY;

  constructor(windowMs: number) {
    this.#slotMs = windowMs / SLOTS;
  }

  /** Records one outcome at `now`. */
  record(success: boolean, now: number): void {
    this.#advance(now);
    const i = this.#slot % SLOTS;
    if (success) this.#ok[i]! += 1;
    else this.#failed[i]! += 1;
  }

  /** Requests and failures in the window ending at `now`. */
  counts(now: number): { requests: number; failures: number } {
    this.#advance(now);
    let ok = 0;
    let failed = 0;
    for (let i = 0; i < SLOTS; i++) {
      ok += this.#ok[i]!;
      failed += this.#failed[i]!;
    }
    return { requests: ok + failed, failures: failed };
  }

  #advance(now: number): void {
    const slot = Math.floor(now / this.#slotMs);
    if (slot <= this.#slot) return; // same slot, or a clock that stepped back
    const gap = Math.min(slot - this.#slot, SLOTS);
    for (let k = 1; k <= gap; k++) {
      const i = (((slot - gap + k) % SLOTS) + SLOTS) % SLOTS;
      this.#ok[i] = 0;
      this.#failed[i] = 0;
    }
    this.#slot = slot;
  }
}

/**
 * Failure accrual for one endpoint: a pure state machine with no timers.
 * `ready` → (N consecutive failures, or in `success-rate` mode a windowed success rate below
 * the threshold over at least `minRequests`) → `ejected` until `probeAt` → one probe request
 * (`probing`) → success restores `ready`, failure ejects again with a doubled penalty
 * (`min × 2^k`, capped at max, plus up to `jitter × penalty` random extra).
 *
 * In `consecutive-failures` mode a restore starts over (k back to 0). In `success-rate` mode a
 * restore is on probation, as Envoy's outlier detection keeps its ejection multiplier: the
 * window keeps every outcome (before the ejection, the probe, after) until it slides out, so
 * a failure while the rate is still below the threshold ejects again at once, and k grows
 * with each ejection; k returns to 0 only once the endpoint has been ready for a whole
 * `windowMs` since its restore and its success rate over the window is at or above the
 * threshold (checked at each outcome).
 */
export class FailureAccrual {
  #state: AccrualState = "ready";
  #failures = 0;
  #ejections = 0;
  #probeAt = Number.POSITIVE_INFINITY;
  /** When the endpoint was last restored (`success-rate` mode: its probation's start). */
  #restoredAt = Number.NEGATIVE_INFINITY;
  readonly #config: FailureAccrualConfig;
  readonly #random: Random;
  /** The success-rate window (`success-rate` mode only). */
  readonly #window: SuccessWindow | undefined;

  constructor(config: FailureAccrualConfig, random: Random) {
    this.#config = config;
    this.#random = random;
    this.#window =
      config.mode === "success-rate" ? new SuccessWindow(config.successRate.windowMs) : undefined;
  }

  /** Why the last ejection from `ready` happened: the mode's name. */
  get reason(): AccrualMode {
    return this.#config.mode;
  }

  /** Current state. */
  get state(): AccrualState {
    return this.#state;
  }

  /** Consecutive failures seen since the last success. */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** When an ejected endpoint may be probed (ms); `Infinity` when not ejected. */
  get probeAt(): number {
    return this.#probeAt;
  }

  /**
   * Ejections since the endpoint was last healthy: the next ejection's penalty is
   * `minPenaltyMs × 2^ejections` (capped). See the class doc for when it returns to 0.
   */
  get ejections(): number {
    return this.#ejections;
  }

  /** Records a success at `now`; returns true when it restored an ejected or probing endpoint. */
  success(now = 0): boolean {
    this.#failures = 0;
    const w = this.#window;
    if (w === undefined) {
      if (this.#state === "ready") return false;
      this.#ejections = 0;
    } else {
      w.record(true, now);
      if (this.#state === "ready") {
        this.#endProbation(w, now);
        return false;
      }
      this.#restoredAt = now;
    }
    this.#state = "ready";
    this.#probeAt = Number.POSITIVE_INFINITY;
    return true;
  }

  /** Records a failure at `now`; returns true when it (re-)ejected the endpoint. */
  failure(now: number): boolean {
    this.#failures++;
    const w = this.#window;
    w?.record(false, now);
    if (this.#state === "ejected") return false;
    if (this.#state === "ready") {
      if (!this.#tripped(now)) {
        if (w !== undefined) this.#endProbation(w, now);
        return false;
      }
    }
    this.#state = "ejected";
    this.#probeAt = now + this.penaltyMs(this.#ejections);
    this.#ejections++;
    return true;
  }

  /**
   * `success-rate` mode: a restored endpoint that has stayed ready for a whole window with a
   * success rate at or above the threshold is healthy again, and its next ejection starts
   * from the minimum penalty.
   */
  #endProbation(w: SuccessWindow, now: number): void {
    if (this.#ejections === 0) return;
    const { windowMs, threshold } = this.#config.successRate;
    if (now - this.#restoredAt < windowMs) return;
    const { requests, failures } = w.counts(now);
    if (requests > 0 && (requests - failures) / requests >= threshold) this.#ejections = 0;
  }

  /** Whether a ready endpoint's record at `now` ejects it. */
  #tripped(now: number): boolean {
    const w = this.#window;
    if (w === undefined) return this.#failures >= this.#config.consecutiveFailures;
    const { requests, failures } = w.counts(now);
    const { minRequests, threshold } = this.#config.successRate;
    return requests >= minRequests && (requests - failures) / requests < threshold;
  }

  /** Marks the probe as sent; only valid when ejected and `now >= probeAt`. */
  startProbe(): void {
    this.#state = "probing";
    this.#probeAt = Number.POSITIVE_INFINITY;
  }

  /** A probe ended without saying anything about the endpoint (e.g. aborted): probe again. */
  probeInconclusive(now: number): void {
    if (this.#state !== "probing") return;
    this.#state = "ejected";
    this.#probeAt = now;
  }

  /** Backoff for the `k`-th consecutive ejection (0-based), jitter included. */
  penaltyMs(k: number): number {
    return penaltyMs(this.#config, k, this.#random);
  }
}

/**
 * The backoff before the `k`-th consecutive probe (0-based): `minPenaltyMs × 2^k` plus up to
 * `jitter` of that at random, capped at `maxPenaltyMs`. Used for ejected endpoints and for
 * rechecks of avoided ones alike.
 */
export function penaltyMs(config: FailureAccrualConfig, k: number, random: Random): number {
  const { minPenaltyMs, maxPenaltyMs, jitter } = config;
  const base = Math.min(maxPenaltyMs, minPenaltyMs * 2 ** Math.min(k, 52));
  return Math.min(maxPenaltyMs, base + base * jitter * random());
}
