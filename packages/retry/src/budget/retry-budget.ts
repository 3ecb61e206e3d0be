import {
  type Clock,
  clockOption,
  monotonicClock,
  nonEmptyString,
  numberIn,
  type OptionNames,
  optionsObject,
} from "@mesh/core";

/** Options of {@link RetryBudget}. Defaults are Linkerd's. */
export interface RetryBudgetOptions {
  /** Name carried by events and metrics. Default `"default"`. */
  name?: string;
  /** Retries allowed per original request, 0..1000. Default 0.2 (one retry per five requests). */
  retryRatio?: number;
  /** Retries always allowed per second regardless of traffic (the reserve). Default 10. */
  minRetriesPerSecond?: number;
  /** How long a deposit counts, in milliseconds, 1000..60000. Default 10000. */
  ttl?: number;
  /** Time source. Default monotonic `performance.now()`. */
  clock?: Clock;
}

/** A readable snapshot of a budget, for metrics and debugging. */
export interface RetryBudgetState {
  name: string;
  /** Retries that may be taken right now (reserve included). */
  balance: number;
  /** Original requests (deposits) counted in the window. */
  deposits: number;
  /** Retries (successful withdrawals) counted in the window. */
  withdrawals: number;
  /** Retries the reserve alone allows per window (`minRetriesPerSecond` × ttl in seconds). */
  reserve: number;
  retryRatio: number;
  minRetriesPerSecond: number;
  ttl: number;
}

const budgetOptionNames: OptionNames = {
  known: ["name", "retryRatio", "minRetriesPerSecond", "ttl", "clock"],
  hints: {
    ratio: "retryRatio",
    minPerSecond: "minRetriesPerSecond",
    minRetries: "minRetriesPerSecond",
    window: "ttl",
  },
};

const SLOTS = 10;
/** Fixed-point scale so that ratios like 0.3 or 7 stay exact enough in integer units. */
const SCALE = 1000;

/**
 * A retry budget with the semantics of Linkerd's (tower's `TpsBudget`): a window of `ttl`
 * kept in 10 slots of `ttl / 10`; each original request deposits, each retry withdraws
 * `1 / retryRatio` deposits' worth, and a reserve of `minRetriesPerSecond × ttl` retries is
 * always available. Retries therefore never exceed `retryRatio × requests + reserve` over the
 * window. As in tower, the window is the slot being filled plus the 10 before it, so a deposit
 * counts for between `ttl` and `ttl + ttl/10`.
 *
 * A deposit is worth 1000 units (0 when the ratio is 0: then only the reserve pays) and a
 * retry costs `1000 / retryRatio` units, so a ratio above 1 lets each request pay for that many
 * retries (as tower's 1000-unit deposits do) and a ratio like 0.3 is exact rather than
 * truncated to 1/3 as in tower.
 *
 * One budget is meant to be shared: by every request of a route, or of an origin.
 * It owns no timers; time comes from the clock.
 */
export class RetryBudget {
  /** The name events and metrics carry. */
  readonly name: string;
  readonly retryRatio: number;
  readonly minRetriesPerSecond: number;
  /** Window length in milliseconds. */
  readonly ttl: number;
  readonly #clock: Clock;
  readonly #slotMs: number;
  readonly #depositUnits: number;
  readonly #withdrawUnits: number;
  readonly #reserveUnits: number;
  readonly #slack: number;
  // Slot SLOTS (index 10) is the one being filled; 0..9 are the committed ones, in a ring.
  readonly #units = new Float64Array(SLOTS + 1);
  readonly #deposits = new Float64Array(SLOTS + 1);
  readonly #withdrawals = new Float64Array(SLOTS + 1);
  #slot: number;

  constructor(options?: RetryBudgetOptions) {
    const o = optionsObject<RetryBudgetOptions>("budget", options, budgetOptionNames);
    this.name = nonEmptyString("budget.name", o.name, "default");
    this.retryRatio = numberIn("budget.retryRatio", o.retryRatio, 0.2, 0, 1000);
    this.minRetriesPerSecond = numberIn(
      "budget.minRetriesPerSecond",
      o.minRetriesPerSecond,
      10,
      0,
      1_000_000,
    );
    this.ttl = numberIn("budget.ttl", o.ttl, 10_000, 1000, 60_000);
    this.#clock = clockOption("budget.clock", o.clock, monotonicClock);
    this.#slotMs = this.ttl / SLOTS;
    // Ratios too small to matter (or 0) earn nothing from deposits: only the reserve pays.
    if (this.retryRatio < 1e-9) {
      this.#depositUnits = 0;
      this.#withdrawUnits = SCALE;
    } else {
      this.#depositUnits = SCALE;
      this.#withdrawUnits = SCALE / this.retryRatio;
    }
    this.#reserveUnits = ((this.minRetriesPerSecond * this.ttl) / 1000) * this.#withdrawUnits;
    // Float sums of deposits and fractional withdrawals are off by a few ulps; forgive that much.
    this.#slack = this.#withdrawUnits * 1e-9;
    this.#slot = Math.floor(this.#clock.now() / this.#slotMs);
  }

  /** Records an original request: adds one deposit to the window. */
  deposit(): void {
    this.#expire();
    this.#units[SLOTS]! += this.#depositUnits;
    this.#deposits[SLOTS]! += 1;
  }

  /**
   * Takes the cost of one retry if the window (plus the reserve) can pay for it.
   * @returns true when the retry may go ahead; false when the budget is exhausted.
   */
  tryWithdraw(): boolean {
    this.#expire();
    if (this.#sum() + this.#reserveUnits + this.#slack < this.#withdrawUnits) return false;
    this.#units[SLOTS]! -= this.#withdrawUnits;
    this.#withdrawals[SLOTS]! += 1;
    return true;
  }

  /** A snapshot of the window, for metrics. */
  state(): RetryBudgetState {
    this.#expire();
    let deposits = 0;
    let withdrawals = 0;
    for (let i = 0; i <= SLOTS; i++) {
      deposits += this.#deposits[i]!;
      withdrawals += this.#withdrawals[i]!;
    }
    return {
      name: this.name,
      balance: Math.max(
        0,
        Math.floor((this.#sum() + this.#reserveUnits + this.#slack) / this.#withdrawUnits),
      ),
      deposits,
      withdrawals,
      reserve: (this.minRetriesPerSecond * this.ttl) / 1000,
      retryRatio: this.retryRatio,
      minRetriesPerSecond: this.minRetriesPerSecond,
      ttl: this.ttl,
    };
  }

  #sum(): number {
    let sum = 0;
    for (let i = 0; i <= SLOTS; i++) sum += this.#units[i]!;
    return sum;
  }

  /** Commits the current slot and clears the ones that fell out of the window. */
  #expire(): void {
    const slot = Math.floor(this.#clock.now() / this.#slotMs);
    const elapsed = slot - this.#slot;
    if (elapsed <= 0) return; // same slot, or a clock that stepped back
    // The slot being filled moves into the ring at the position of the slot it replaces.
    const ring = this.#slot % SLOTS;
    this.#commit(ring, SLOTS);
    // Any further slots we skipped over were empty: clear their positions in the ring.
    const skipped = Math.min(elapsed - 1, SLOTS);
    for (let i = 1; i <= skipped; i++) this.#clear((this.#slot + i) % SLOTS);
    this.#slot = slot;
  }

  #commit(to: number, from: number): void {
    this.#units[to] = this.#units[from]!;
    this.#deposits[to] = this.#deposits[from]!;
    this.#withdrawals[to] = this.#withdrawals[from]!;
    this.#clear(from);
  }

  #clear(i: number): void {
    this.#units[i] = 0;
    this.#deposits[i] = 0;
    this.#withdrawals[i] = 0;
  }
}
