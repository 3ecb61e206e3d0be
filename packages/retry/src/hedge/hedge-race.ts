/** What a hedge race draws on: a {@link RetryBudget} satisfies it. */
export interface HedgeBudget {
  /** Takes the cost of one extra attempt; false when the budget cannot pay for it. */
  tryWithdraw(): boolean;
}

/** What to do with an attempt that ended without a final answer. */
export type HedgeStep =
  /** Send the next hedge now (A6: a non-fatal answer skips the hedging delay). */
  | "hedge"
  /** Send the next hedge (already counted and paid) after the server's pushback. */
  | "wait"
  /** Forget it: other attempts are still running. */
  | "drop"
  /** Nothing else is running or may be sent: this outcome is the answer. */
  | "forward";

/**
 * The pure state of one hedged request (gRPC A6 hedging): the original attempt, then up to
 * `maxAttempts - 1` hedges, one every `delay` ms while no final answer arrived, or at once
 * after a non-fatal answer. Every hedge is paid from the budget, so when the budget is
 * exhausted no hedge is sent and a slow fleet never sees its load doubled. The first final
 * answer wins; the owner cancels the others.
 *
 * It owns no timers: the owner calls {@link HedgeRace.hedge} when the delay has passed and
 * reports outcomes. Attempt numbers are 0 for the original, then 1, 2, ….
 */
export class HedgeRace {
  readonly maxAttempts: number;
  readonly #budget: HedgeBudget | undefined;
  /** Attempts sent so far (the original included). */
  #sent = 1;
  #inFlight = 1;
  #winner = -1;
  /** The budget refused a hedge: no more will be tried. */
  #exhausted = false;
  /** A server said not to retry (negative `grpc-retry-pushback-ms`): no more hedges. */
  #stopped = false;

  constructor(maxAttempts: number, budget: HedgeBudget | undefined) {
    this.maxAttempts = maxAttempts;
    this.#budget = budget;
  }

  /** Attempts sent so far, the original included. */
  get sent(): number {
    return this.#sent;
  }

  /** Attempts still running. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The winning attempt, or -1 while the race is open. */
  get winner(): number {
    return this.#winner;
  }

  /** Whether the budget refused a hedge. */
  get exhausted(): boolean {
    return this.#exhausted;
  }

  /** Whether another hedge may still be sent later (the owner keeps its timer only then). */
  get open(): boolean {
    return (
      this.#winner === -1 && !this.#exhausted && !this.#stopped && this.#sent < this.maxAttempts
    );
  }

  /**
   * The hedging delay elapsed (or a non-fatal answer arrived): sends the next hedge if the
   * race is open and the budget pays for it.
   * @returns the number of the attempt to send, or -1 for none.
   */
  hedge(): number {
    if (!this.open) return -1;
    if (this.#budget !== undefined && !this.#budget.tryWithdraw()) {
      this.#exhausted = true;
      return -1;
    }
    this.#inFlight++;
    return this.#sent++;
  }

  /**
   * Attempt `n` got a final answer (anything but a non-fatal status or an error).
   * @returns true when it wins (the first final answer); the owner forwards it and cancels
   * the rest. A later final answer returns false and is discarded.
   */
  final(n: number): boolean {
    if (this.#winner !== -1) return false;
    this.#winner = n;
    this.#inFlight--;
    return true;
  }

  /**
   * Attempt `n` ended with a non-fatal status or an error before any answer was chosen.
   * `pushback` is what the server asked (A6 `grpc-retry-pushback-ms`): a delay in ms before
   * the next hedge, or `null` for "no more attempts".
   * @returns `"hedge"` when the owner should send attempt {@link HedgeRace.sent} − 1 now
   * (already counted and paid), `"wait"` when it should send that attempt after the
   * pushback, `"drop"` when others still run, `"forward"` when this outcome is the request's
   * answer (then it is the winner).
   */
  nonFatal(n: number, pushback?: number | null): HedgeStep {
    if (this.#winner !== -1) return "drop";
    this.#inFlight--;
    if (pushback === null) this.#stopped = true;
    if (this.hedge() !== -1)
      return pushback !== undefined && pushback !== null && pushback > 0 ? "wait" : "hedge";
    if (this.#inFlight > 0) return "drop";
    this.#winner = n;
    return "forward";
  }

  /** An attempt that ended after the race was decided (a cancelled loser). */
  ended(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }
}
