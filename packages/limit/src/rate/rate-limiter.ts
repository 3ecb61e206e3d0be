import {
  type Clock,
  clockOption,
  integerIn,
  monotonicClock,
  nonEmptyString,
  type OptionNames,
  optionsObject,
  typeError,
} from "@mesh/core";
import { rateLimitedChannel } from "../events.js";
import { Gcra, type Rate } from "./gcra.js";

/** A limit shared by the named keys (client identities). */
export interface RateOverride extends Rate {
  /** The keys (in the proxy: client SPIFFE IDs) this limit applies to instead of `identity`. */
  keys: readonly string[];
}

/** Options of {@link RateLimiter}. At least one of `total`, `identity`, `overrides`. */
export interface RateLimiterOptions {
  /** One limit over every request. */
  total?: Rate;
  /** A limit per key (client identity), for keys without an override. */
  identity?: Rate;
  /**
   * Limits for named keys, replacing `identity` for them. Each override is one limit shared
   * by its keys (as Linkerd's `overrides[].clientRefs`). A key may appear in one override.
   */
  overrides?: readonly RateOverride[];
  /**
   * Most per-key states kept (least recently used dropped first). Default 10 000. Bounds
   * memory whatever the number of distinct clients; see {@link RateLimiter}.
   */
  maxKeys?: number;
  /** Name carried by events. Default `"default"`. */
  name?: string;
  clock?: Clock;
}

/** Which limit refused a request. */
export type RateLimitKind = "total" | "identity" | "override";

const optionNames: OptionNames = {
  known: ["total", "identity", "overrides", "maxKeys", "name", "clock"],
  hints: { perIdentity: "identity", perKey: "identity", global: "total", maxEntries: "maxKeys" },
};

const overrideNames: OptionNames = {
  known: ["requestsPerSecond", "burst", "keys"],
  hints: { clientRefs: "keys", identities: "keys", rps: "requestsPerSecond" },
};

/** One override's limit and its TAT, shared by its keys. */
interface OverrideState {
  readonly gcra: Gcra;
  tat: number;
}

/**
 * Request rate limits with GCRA (the generic cell rate algorithm): a total limit, a limit
 * per key (client identity) and per-key overrides, as Linkerd 2.17's
 * `HTTPLocalRateLimitPolicy`.
 *
 * Why GCRA rather than a token bucket: it admits exactly what a token bucket with the same
 * rate and burst admits, but its state is one number per key (the theoretical arrival
 * time) with no refill arithmetic, and the time until a refused request would conform —
 * the `retry-after` — falls out of it exactly.
 *
 * A request is admitted only when every limit that applies admits it, and only an admitted
 * request uses up capacity, so a client refused by its own limit does not eat into the
 * total. Memory is bounded: per-key state lives in an LRU map of at most `maxKeys` entries.
 * Dropping a key's state forgives it at most `burst` requests of debt (a key whose TAT is
 * in the past carries no state worth keeping), so with `maxKeys` above the number of
 * clients active within a burst period the limits are exact.
 *
 * Pure: no timers; time comes from the injected clock. Not thread-shared state, so one
 * limiter per process (or per listener) — limits are local, as Linkerd's are.
 */
export class RateLimiter {
  readonly name: string;
  readonly maxKeys: number;
  /** Which limit refused the last refused request. */
  rejectedBy: RateLimitKind | undefined = undefined;
  readonly #clock: Clock;
  readonly #total: Gcra | undefined;
  #totalTat = Number.NEGATIVE_INFINITY;
  readonly #identity: Gcra | undefined;
  /** TAT by key, least recently used first. */
  readonly #tats = new Map<string, number>();
  readonly #overrides = new Map<string, OverrideState>();

  constructor(options: RateLimiterOptions) {
    const o = optionsObject<RateLimiterOptions>("rateLimit", options, optionNames);
    if (options === undefined) throw typeError("rateLimit", "an options object", options);
    this.#total = o.total === undefined ? undefined : new Gcra("rateLimit.total", o.total);
    this.#identity =
      o.identity === undefined ? undefined : new Gcra("rateLimit.identity", o.identity);
    if (this.#identity !== undefined) {
      this.#notAboveTotal("rateLimit.identity.requestsPerSecond", this.#identity);
    }
    if (o.overrides !== undefined) {
      if (!Array.isArray(o.overrides)) {
        throw typeError("rateLimit.overrides", "an array", o.overrides);
      }
      o.overrides.forEach((ov: unknown, i: number) => {
        const path = `rateLimit.overrides[${i}]`;
        const v = optionsObject<RateOverride>(path, ov as RateOverride | undefined, overrideNames);
        if (ov === undefined) throw typeError(path, "an override object", ov);
        if (!Array.isArray(v.keys) || v.keys.length === 0) {
          throw typeError(`${path}.keys`, "a non-empty array of strings", v.keys);
        }
        const gcra = new Gcra(path, { requestsPerSecond: v.requestsPerSecond, burst: v.burst });
        this.#notAboveTotal(`${path}.requestsPerSecond`, gcra);
        const state: OverrideState = { gcra, tat: Number.NEGATIVE_INFINITY };
        v.keys.forEach((k: unknown, j: number) => {
          const key = nonEmptyString(`${path}.keys[${j}]`, k);
          if (this.#overrides.has(key)) {
            throw new RangeError(
              `${path}.keys[${j}]: expected a key in one override only, got ${JSON.stringify(key)} again`,
            );
          }
          this.#overrides.set(key, state);
        });
      });
    }
    if (this.#total === undefined && this.#identity === undefined && this.#overrides.size === 0) {
      throw typeError("rateLimit", "at least one of total, identity, overrides", options);
    }
    this.maxKeys = integerIn("rateLimit.maxKeys", o.maxKeys, 10_000, 1, 1e8);
    this.name = nonEmptyString("rateLimit.name", o.name, "default");
    this.#clock = clockOption("rateLimit.clock", o.clock, monotonicClock);
  }

  /** Linkerd's rule: no per-client limit above the total (it could never be reached). */
  #notAboveTotal(path: string, gcra: Gcra): void {
    const total = this.#total;
    if (total !== undefined && gcra.requestsPerSecond > total.requestsPerSecond) {
      throw new RangeError(
        `${path}: expected at most total.requestsPerSecond (${total.requestsPerSecond}), got ${gcra.requestsPerSecond}`,
      );
    }
  }

  /** Per-key states held now (at most `maxKeys`). */
  get keys(): number {
    return this.#tats.size;
  }

  /**
   * Asks to admit one request from `key` (undefined: only the total limit applies).
   * Returns a number, so the hot path allocates nothing:
   * - `0`: admitted now;
   * - `> 0`: admitted after waiting that many ms (only when `maxWaitMs > 0`; the capacity is
   *   reserved, so the caller must send it then);
   * - `< 0`: refused; `-result` is how many ms until it would conform (`retry-after`), and
   *   {@link rejectedBy} says which limit refused.
   */
  tryAcquire(key?: string, maxWaitMs = 0): number {
    const now = this.#clock.now();
    let wait = 0;
    let by: RateLimitKind = "total";
    const total = this.#total;
    if (total !== undefined) wait = total.wait(this.#totalTat, now);
    let override: OverrideState | undefined;
    let keyTat = Number.NEGATIVE_INFINITY;
    const identity = this.#identity;
    if (key !== undefined) {
      override = this.#overrides.size === 0 ? undefined : this.#overrides.get(key);
      if (override !== undefined) {
        const w = override.gcra.wait(override.tat, now);
        if (w > wait) {
          wait = w;
          by = "override";
        }
      } else if (identity !== undefined) {
        const tat = this.#tats.get(key);
        if (tat !== undefined) {
          keyTat = tat;
          const w = identity.wait(tat, now);
          if (w > wait) {
            wait = w;
            by = "identity";
          }
        }
      }
    }
    if (wait > maxWaitMs) {
      this.rejectedBy = by;
      if (rateLimitedChannel.hasSubscribers) {
        rateLimitedChannel.publish({ name: this.name, key, limit: by, retryAfterMs: wait });
      }
      return -wait;
    }
    if (total !== undefined) this.#totalTat = total.next(this.#totalTat, now);
    if (override !== undefined) override.tat = override.gcra.next(override.tat, now);
    else if (identity !== undefined && key !== undefined)
      this.#touch(key, identity.next(keyTat, now));
    return wait;
  }

  /** Stores `key`'s TAT as the most recently used, dropping the least recently used beyond `maxKeys`. */
  #touch(key: string, tat: number): void {
    const tats = this.#tats;
    // delete + set moves the key to the end of the insertion order (most recent).
    if (!tats.delete(key) && tats.size >= this.maxKeys) {
      const oldest = tats.keys().next().value as string;
      tats.delete(oldest);
    }
    tats.set(key, tat);
  }
}
