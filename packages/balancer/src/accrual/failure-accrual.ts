import { duration, integerIn, numberIn, optionsObject } from "@mesh/core";
import type { Random } from "../random.js";

/** Options for consecutive-failure accrual (Linkerd defaults). Durations in milliseconds. */
export interface FailureAccrualOptions {
  /** Consecutive failures that eject an endpoint. Default 7. */
  consecutiveFailures?: number;
  /** First ejection penalty before a probe. Default 1 000 ms. */
  minPenaltyMs?: number;
  /** Penalty cap for repeated ejections. Default 60 000 ms. */
  maxPenaltyMs?: number;
  /** Random extra of up to `jitter × penalty`, in 0..1. Default 0.5. */
  jitter?: number;
}

/** Resolved, validated {@link FailureAccrualOptions}. */
export interface FailureAccrualConfig {
  readonly consecutiveFailures: number;
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

/**
 * Consecutive-failure accrual for one endpoint: a pure state machine with no timers.
 * `ready` → (N consecutive failures) → `ejected` until `probeAt` → one probe request
 * (`probing`) → success restores `ready`, failure ejects again with a doubled penalty
 * (`min × 2^k`, capped at max, plus up to `jitter × penalty` random extra).
 */
export class FailureAccrual {
  #state: AccrualState = "ready";
  #failures = 0;
  #ejections = 0;
  #probeAt = Number.POSITIVE_INFINITY;
  readonly #config: FailureAccrualConfig;
  readonly #random: Random;

  constructor(config: FailureAccrualConfig, random: Random) {
    this.#config = config;
    this.#random = random;
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

  /** Records a success; returns true when it restored an ejected or probing endpoint. */
  success(): boolean {
    this.#failures = 0;
    if (this.#state === "ready") return false;
    this.#state = "ready";
    this.#ejections = 0;
    this.#probeAt = Number.POSITIVE_INFINITY;
    return true;
  }

  /** Records a failure at `now`; returns true when it (re-)ejected the endpoint. */
  failure(now: number): boolean {
    this.#failures++;
    if (this.#state === "ejected") return false;
    if (this.#state === "ready" && this.#failures < this.#config.consecutiveFailures) return false;
    this.#state = "ejected";
    this.#probeAt = now + this.penaltyMs(this.#ejections);
    this.#ejections++;
    return true;
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
