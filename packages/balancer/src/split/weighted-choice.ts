import { numberIn, typeError } from "@mesh/core";
import type { Random } from "../random.js";

/** One weighted option. */
export interface WeightedEntry<T> {
  readonly value: T;
  /** Share relative to the others, >= 0. 0 turns the entry off. */
  readonly weight: number;
}

/**
 * Chooses among entries with probability weight / total weight. Weights change live with
 * {@link WeightedChoice.setWeights}. Pure: randomness is injected.
 */
export class WeightedChoice<T> {
  #values: T[] = [];
  #cumulative: number[] = [];
  #total = 0;
  readonly #random: Random;

  constructor(
    entries: readonly WeightedEntry<T>[],
    random: Random = Math.random,
    path = "backends",
  ) {
    this.#random = random;
    this.setWeights(entries, path);
  }

  /** Total weight. */
  get total(): number {
    return this.#total;
  }

  /** Replaces all entries and weights atomically; validates first. */
  setWeights(entries: readonly WeightedEntry<T>[], path = "backends"): void {
    if (!Array.isArray(entries) || entries.length === 0)
      throw typeError(path, "a non-empty array", entries);
    const values: T[] = [];
    const cumulative: number[] = [];
    let total = 0;
    entries.forEach((e, i) => {
      if (e === null || typeof e !== "object")
        throw typeError(`${path}[${i}]`, "{ value, weight }", e);
      total += numberIn(`${path}[${i}].weight`, e.weight, 0, 0, 1e9);
      values.push(e.value);
      cumulative.push(total);
    });
    if (total <= 0) throw new RangeError(`${path}: expected at least one weight > 0, got all 0`);
    this.#values = values;
    this.#cumulative = cumulative;
    this.#total = total;
  }

  /** Picks one value. */
  pick(): T {
    const c = this.#cumulative;
    if (c.length === 1) return this.#values[0]!; // no split: no random number needed
    const x = this.#random() * this.#total;
    // Backends are few; a linear scan beats a binary search here.
    for (let i = 0; i < c.length; i++) if (x < c[i]!) return this.#values[i]!;
    return this.#values[c.length - 1]!;
  }
}
