import diagnostics from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";

// The `mesh:limit:*` names are spelled once, in @mesh/core's `meshChannels.limit`.
// Events are published only while a channel has subscribers.
const channels = meshChannels.limit;

/** `mesh:limit:rate-limited` — a request was refused by a rate limit. */
export interface RateLimitedEvent {
  /** The limiter's name. */
  name: string;
  /** The request's key (client identity), if it had one. */
  key: string | undefined;
  /** Which limit refused it. */
  limit: "total" | "identity" | "override";
  /** Time until it would conform, ms. */
  retryAfterMs: number;
}

/** `mesh:limit:queued` — an outbound request waits for its rate limit before it is sent. */
export interface QueuedEvent {
  name: string;
  key: string | undefined;
  waitMs: number;
}

/** `mesh:limit:concurrency-rejected` — the adaptive concurrency limit refused a request. */
export interface ConcurrencyRejectedEvent {
  name: string;
  limit: number;
  inFlight: number;
}

/** `mesh:limit:concurrency-limit` — the adaptive concurrency limit was recomputed. */
export interface ConcurrencyLimitEvent {
  name: string;
  limit: number;
  previous: number;
  /** The latest minimum-RTT measurement, ms. */
  minRttMs: number;
  /** The window's RTT (its percentile), ms; NaN when the update ended a minRTT window. */
  sampleRttMs: number;
  /** `"sample"` after a sampling window, `"min-rtt"` after a minRTT measurement. */
  window: "sample" | "min-rtt";
}

export const rateLimitedChannel = diagnostics.channel(channels.rateLimited);
export const queuedChannel = diagnostics.channel(channels.queued);
export const concurrencyRejectedChannel = diagnostics.channel(channels.concurrencyRejected);
export const concurrencyLimitChannel = diagnostics.channel(channels.concurrencyLimit);
