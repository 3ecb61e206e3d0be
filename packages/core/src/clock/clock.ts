/**
 * A source of time in milliseconds. Cores read time only through one, so tests and
 * simulations can drive it; only differences between readings matter unless a package says
 * otherwise (certificates carry wall-clock times, so `@mesh/tls-identity` reads epoch ms).
 */
export interface Clock {
  /** The current time in milliseconds. */
  now(): number;
}

// `performance` is a getter on globalThis; the object behind it never changes.
const perf = performance;

/** The default clock: monotonic, from `performance.now()`. */
export const monotonicClock: Clock = { now: () => perf.now() };
