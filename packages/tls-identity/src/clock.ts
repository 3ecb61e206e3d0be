/**
 * A source of time in milliseconds. Certificates carry wall-clock times, so every clock in
 * this package reads **milliseconds since the Unix epoch** (`Date.now()` by default);
 * inject a fake one in tests to drive validity and renewal math.
 *
 * @public
 */
export interface Clock {
  now(): number;
}

/** The default clock: `Date.now()`. */
export const systemClock: Clock = { now: () => Date.now() };
