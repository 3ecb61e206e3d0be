import { typeError } from "@mesh/core";
import { Dispatcher } from "undici";
import { destroyArgs, promiseOrCallback } from "../dispatcher/lifecycle.js";
import type { Random } from "../random.js";
import { WeightedChoice } from "./weighted-choice.js";

/** One backend of a {@link TrafficSplit}. */
export interface SplitBackend {
  /** Name for snapshots, e.g. `"web-v2"`. */
  name: string;
  /** Any undici dispatcher, typically a `Balancer`. */
  dispatcher: Dispatcher;
  /** Relative share, >= 0. */
  weight: number;
}

/** Options for {@link TrafficSplit}. */
export interface TrafficSplitOptions {
  backends: readonly SplitBackend[];
  /** Randomness; use `seededRandom(n)` for reproducible tests. Default `Math.random`. */
  random?: Random;
}

/**
 * An undici Dispatcher that sends each request to one of several backends with probability
 * proportional to weight (e.g. 90/10 canary). Weights change live with
 * {@link TrafficSplit.setWeights}; requests in flight are unaffected.
 */
export class TrafficSplit extends Dispatcher {
  #choice: WeightedChoice<SplitBackend>;
  #backends: SplitBackend[];

  constructor(options: TrafficSplitOptions) {
    super();
    if (options === null || typeof options !== "object")
      throw typeError("options", "an object", options);
    this.#backends = validate(options.backends);
    this.#choice = new WeightedChoice(
      this.#backends.map((b) => ({ value: b, weight: b.weight })),
      options.random ?? Math.random,
    );
  }

  /** Current backends and weights. */
  get backends(): readonly Readonly<SplitBackend>[] {
    return this.#backends;
  }

  /** Sets new weights by backend name; names not given keep their weight. */
  setWeights(weights: Readonly<Record<string, number>>): void {
    if (weights === null || typeof weights !== "object")
      throw typeError("weights", "an object", weights);
    for (const name of Object.keys(weights)) {
      if (!this.#backends.some((b) => b.name === name))
        throw typeError(`weights.${name}`, "a known backend name", name);
    }
    const next = this.#backends.map((b) => ({ ...b, weight: weights[b.name] ?? b.weight }));
    this.#choice.setWeights(
      next.map((b) => ({ value: b, weight: b.weight })),
      "weights",
    );
    this.#backends = next;
  }

  /** Picks a backend (exposed for tests and simulations). */
  pick(): SplitBackend {
    return this.#choice.pick();
  }

  override dispatch(
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): boolean {
    return this.#choice.pick().dispatcher.dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const closed = Promise.all(this.#backends.map((b) => b.dispatcher.close()));
    return promiseOrCallback(
      closed.then(() => undefined),
      callback,
    );
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const { err, callback } = destroyArgs(a, b);
    const destroyed = Promise.all(this.#backends.map((x) => x.dispatcher.destroy(err)));
    return promiseOrCallback(
      destroyed.then(() => undefined),
      callback,
    );
  }
}

function validate(backends: unknown): SplitBackend[] {
  if (!Array.isArray(backends) || backends.length === 0)
    throw typeError("backends", "a non-empty array", backends);
  const names = new Set<string>();
  return backends.map((b: SplitBackend, i) => {
    if (b === null || typeof b !== "object")
      throw typeError(`backends[${i}]`, "{ name, dispatcher, weight }", b);
    if (typeof b.name !== "string" || b.name === "")
      throw typeError(`backends[${i}].name`, "a non-empty string", b.name);
    if (names.has(b.name)) throw typeError(`backends[${i}].name`, "a unique name", b.name);
    names.add(b.name);
    if (!b.dispatcher || typeof b.dispatcher.dispatch !== "function") {
      throw typeError(`backends[${i}].dispatcher`, "an undici Dispatcher", b.dispatcher);
    }
    return { name: b.name, dispatcher: b.dispatcher, weight: b.weight };
  });
}
