/** A source of time in milliseconds. Monotonic by default. */
export interface Clock {
  /** Current time in milliseconds. */
  now(): number;
}

// `performance` is a getter on globalThis; the object behind it never changes.
const perf = performance;

/** The default clock: `performance.now()`, monotonic. */
export const monotonicClock: Clock = { now: () => perf.now() };
