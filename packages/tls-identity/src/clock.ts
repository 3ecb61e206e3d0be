import type { Clock } from "@mesh/core";

/**
 * The default clock of this package: `Date.now()`. Certificates carry wall-clock times, so
 * every {@link Clock} passed to this package reads **milliseconds since the Unix epoch**;
 * inject a fake one in tests to drive validity and renewal math.
 */
export const systemClock: Clock = { now: () => Date.now() };
