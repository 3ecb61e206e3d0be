import type { Endpoint } from "../endpoints/endpoint.js";
import type { Random } from "../random.js";

/**
 * Chooses one endpoint among the ready ones. `ready` always has at least two entries when a
 * selector is consulted (one ready endpoint is used directly).
 */
export interface Selector {
  /** Short name used in snapshots and benchmarks. */
  readonly name: string;
  /** Picks an endpoint from `ready` at time `now` (ms). Must not mutate `ready`. */
  pick(ready: readonly Endpoint[], now: number): Endpoint;
}

/** Built-in strategies. */
export type Strategy = "p2c" | "round-robin" | "least-pending";

/** Strategy names accepted by {@link createSelector}. */
export const STRATEGIES: readonly Strategy[] = ["p2c", "round-robin", "least-pending"];

/**
 * Power of two choices over Peak-EWMA cost: two distinct random endpoints, the cheaper wins
 * (ties go to the first). Cost is `estimate × (pending + 1) / weight`.
 */
export class P2CSelector implements Selector {
  readonly name = "p2c";
  readonly #random: Random;

  constructor(random: Random) {
    this.#random = random;
  }

  pick(ready: readonly Endpoint[], now: number): Endpoint {
    const n = ready.length;
    const i = (this.#random() * n) | 0;
    let j = (this.#random() * (n - 1)) | 0;
    if (j >= i) j++;
    const a = ready[i]!;
    const b = ready[j]!;
    return a.cost(now) <= b.cost(now) ? a : b;
  }
}

/** Plain round-robin over the ready endpoints (for comparison). */
export class RoundRobinSelector implements Selector {
  readonly name = "round-robin";
  #next = 0;

  pick(ready: readonly Endpoint[]): Endpoint {
    if (this.#next >= ready.length) this.#next = 0;
    return ready[this.#next++]!;
  }
}

/** Fewest requests in flight wins; ties rotate so equal endpoints share load (for comparison). */
export class LeastPendingSelector implements Selector {
  readonly name = "least-pending";
  #offset = 0;

  pick(ready: readonly Endpoint[]): Endpoint {
    const n = ready.length;
    const start = this.#offset++ % n;
    let best = ready[start]!;
    for (let k = 1; k < n; k++) {
      const e = ready[(start + k) % n]!;
      if (e.pending < best.pending) best = e;
    }
    if (this.#offset > 1e9) this.#offset = 0;
    return best;
  }
}

/** Builds a built-in selector by name. */
export function createSelector(strategy: Strategy, random: Random): Selector {
  switch (strategy) {
    case "p2c":
      return new P2CSelector(random);
    case "round-robin":
      return new RoundRobinSelector();
    case "least-pending":
      return new LeastPendingSelector();
  }
}
