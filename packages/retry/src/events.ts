import diagnostics from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";

/** The names, as `@mesh/core` spells them. */
const channels = meshChannels.retry;

/** `mesh:retry:attempt` — an attempt is sent; attempt 0 is the original request. */
export interface AttemptEvent {
  name: string;
  attempt: number;
  method: string;
  origin: string;
  path: string;
}

/** `mesh:retry:retry` — a retry was scheduled after `delayMs`. */
export interface RetryEvent {
  name: string;
  /** The number of the attempt being scheduled (1 for the first retry). */
  attempt: number;
  reason: string;
  delayMs: number;
  origin: string;
}

/** `mesh:retry:budget-exhausted` and `mesh:retry:limit-exceeded` — a retryable failure was not retried. */
export interface NotRetriedEvent {
  name: string;
  reason: string;
  origin: string;
}

/** `mesh:retry:timeout` — a timeout fired. */
export interface TimeoutEvent {
  name: string;
  kind: "request" | "per-try" | "idle";
  timeoutMs: number;
  origin: string;
}

/** A circuit breaker state. */
export type BreakerState = "open" | "half-open" | "closed";

/** `mesh:retry:breaker` — a breaker changed state. `name` is the breaker's name (its origin by default). */
export interface BreakerEvent {
  name: string;
  state: BreakerState;
  previous: BreakerState;
}

/** `mesh:retry:breaker-rejected` — a request failed fast because the breaker is open. */
export interface BreakerRejectedEvent {
  name: string;
}

/** `mesh:retry:hedge` — a hedge (attempt `attempt` ≥ 1) was sent while earlier attempts still run. */
export interface HedgeEvent {
  name: string;
  attempt: number;
  origin: string;
}

/** `mesh:retry:hedge-won` — a hedge (attempt ≥ 1) gave the answer; the others were cancelled. */
export type HedgeWonEvent = HedgeEvent;

export const attemptChannel = diagnostics.channel(channels.attempt);
export const retryChannel = diagnostics.channel(channels.retry);
export const budgetExhaustedChannel = diagnostics.channel(channels.budgetExhausted);
export const limitExceededChannel = diagnostics.channel(channels.limitExceeded);
export const timeoutChannel = diagnostics.channel(channels.timeout);
export const breakerChannel = diagnostics.channel(channels.breaker);
export const breakerRejectedChannel = diagnostics.channel(channels.breakerRejected);
export const hedgeChannel = diagnostics.channel(channels.hedge);
export const hedgeWonChannel = diagnostics.channel(channels.hedgeWon);
