/** A source of time in milliseconds. Monotonic by default. */
export interface Clock {
  /** Current time in milliseconds. */
  now(): number;
}

/** The default clock: `performance.now()`, monotonic. */
export const monotonicClock: Clock = { now: () => performance.now() };
