/** A source of time in milliseconds. Only differences between readings are used. */
export interface Clock {
  /** The current time in milliseconds. */
  now(): number;
}

/** The default clock: monotonic, from `performance.now()`. */
export const monotonicClock: Clock = { now: () => performance.now() };
