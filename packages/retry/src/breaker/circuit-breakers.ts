import { integerIn, numberIn, type OptionNames, optionsObject } from "@mesh/core";
import CircuitBreaker from "opossum";
import { type BreakerState, breakerChannel, breakerRejectedChannel } from "../events.js";
import { HttpStatusSet } from "../policy/status-set.js";
import { CircuitOpenError } from "./errors.js";

/** Options of the per-origin circuit breakers (opossum underneath). */
export interface CircuitBreakerOptions {
  /** Failure percentage over the rolling window that opens the breaker, 1..100. Default 50. */
  errorThresholdPercentage?: number;
  /** Requests needed in the window before the breaker may open. Default 10. */
  volumeThreshold?: number;
  /** Time in ms an open breaker waits before letting one probe through (half-open). Default 10000. */
  resetTimeout?: number;
  /** Length of the rolling statistics window in ms. Default 10000. */
  rollingCountTimeout?: number;
  /** Buckets in the rolling window; must divide `rollingCountTimeout`. Default 10. */
  rollingCountBuckets?: number;
  /** Response statuses counted as failures, Linkerd syntax. Default `"5xx"`. */
  failureStatuses?: string | readonly string[];
}

const breakerOptionNames: OptionNames = {
  known: [
    "errorThresholdPercentage",
    "volumeThreshold",
    "resetTimeout",
    "rollingCountTimeout",
    "rollingCountBuckets",
    "failureStatuses",
  ],
  hints: {
    threshold: "errorThresholdPercentage",
    errorThreshold: "errorThresholdPercentage",
    minimumRequests: "volumeThreshold",
    volume: "volumeThreshold",
    statusCodes: "failureStatuses",
    failureStatusCodes: "failureStatuses",
    http: "failureStatuses",
    timeout: "timeout({ request }) (breakers have no timeout of their own)",
  },
};

/** Outcome of one call through a breaker. */
export type BreakerOutcome = "success" | "failure" | "neutral";

type Run = (settle: (outcome: BreakerOutcome) => void) => void;

/** A failure counted by the breaker; never seen by callers. */
class BreakerFailure extends Error {}
const failure = new BreakerFailure("counted failure");

/**
 * A set of circuit breakers, one per key (the request origin), each an opossum breaker with
 * no timeout of its own (timeouts belong to `timeout()` and `retry()`). State changes are
 * published on `mesh:retry:breaker` and fast failures on `mesh:retry:breaker-rejected`.
 */
export class CircuitBreakers {
  readonly failureStatuses: HttpStatusSet;
  readonly #options: CircuitBreaker.Options;
  readonly #breakers = new Map<string, CircuitBreaker<[Run], void>>();
  readonly #states = new Map<string, BreakerState>();

  constructor(options?: CircuitBreakerOptions) {
    const o = optionsObject<CircuitBreakerOptions>("circuitBreaker", options, breakerOptionNames);
    const rollingCountTimeout = integerIn(
      "circuitBreaker.rollingCountTimeout",
      o.rollingCountTimeout,
      10_000,
      10,
      3_600_000,
    );
    const rollingCountBuckets = integerIn(
      "circuitBreaker.rollingCountBuckets",
      o.rollingCountBuckets,
      10,
      1,
      1000,
    );
    if (rollingCountTimeout % rollingCountBuckets !== 0) {
      throw new RangeError(
        `circuitBreaker.rollingCountBuckets: expected a divisor of rollingCountTimeout (${rollingCountTimeout}), got ${rollingCountBuckets}`,
      );
    }
    this.#options = {
      timeout: false,
      errorThresholdPercentage: numberIn(
        "circuitBreaker.errorThresholdPercentage",
        o.errorThresholdPercentage,
        50,
        1,
        100,
      ),
      volumeThreshold: integerIn(
        "circuitBreaker.volumeThreshold",
        o.volumeThreshold,
        10,
        0,
        1_000_000,
      ),
      resetTimeout: integerIn(
        "circuitBreaker.resetTimeout",
        o.resetTimeout,
        10_000,
        1,
        2_147_483_647,
      ),
      rollingCountTimeout,
      rollingCountBuckets,
    };
    this.failureStatuses = new HttpStatusSet(
      o.failureStatuses ?? "5xx",
      "circuitBreaker.failureStatuses",
    );
  }

  /** The state of the breaker for `name`; `closed` when none exists yet. */
  state(name: string): BreakerState {
    return this.#states.get(name) ?? "closed";
  }

  /**
   * Runs `run` through the breaker for `name`. `run` must call `settle` once with the outcome.
   * When the breaker is open, `run` is not called and `rejected` gets a {@link CircuitOpenError}.
   */
  call(name: string, run: Run, rejected: (error: CircuitOpenError) => void): void {
    const breaker = this.#breaker(name);
    let ran = false;
    breaker
      .fire((settle) => {
        ran = true;
        run(settle);
      })
      .catch((error: unknown) => {
        if (ran || error instanceof BreakerFailure) return;
        if (breakerRejectedChannel.hasSubscribers) breakerRejectedChannel.publish({ name });
        rejected(new CircuitOpenError(name));
      });
  }

  /** Stops every breaker's timers. Breakers are recreated on demand afterwards. */
  shutdown(): void {
    for (const breaker of this.#breakers.values()) breaker.shutdown();
    this.#breakers.clear();
    this.#states.clear();
  }

  #breaker(name: string): CircuitBreaker<[Run], void> {
    let breaker = this.#breakers.get(name);
    if (breaker !== undefined) return breaker;
    breaker = new CircuitBreaker<[Run], void>(
      (run) =>
        new Promise<void>((resolve, reject) => {
          run((outcome) => (outcome === "failure" ? reject(failure) : resolve()));
        }),
      // opossum only counts rejections that the error filter does not exclude; neutral
      // outcomes resolve so they count as successes in the volume, as a cancelled call should not open it.
      { ...this.#options, name },
    );
    const move = (state: BreakerState) => {
      const previous = this.state(name);
      this.#states.set(name, state);
      if (breakerChannel.hasSubscribers) breakerChannel.publish({ name, state, previous });
    };
    breaker.on("open", () => move("open"));
    breaker.on("halfOpen", () => move("half-open"));
    breaker.on("close", () => move("closed"));
    this.#breakers.set(name, breaker);
    this.#states.set(name, "closed");
    return breaker;
  }
}
