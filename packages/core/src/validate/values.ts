import type { Clock } from "../clock/clock.js";
import { rangeError, typeError } from "./errors.js";

// Every reader takes (path, value, fallback, ...constraints) and returns `fallback` when
// `value` is undefined. Not a number (NaN included) is a TypeError; a number out of range
// (infinities, fractions where an integer is asked) is a RangeError.

/** The longest delay `setTimeout` honours, in ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Reads an optional finite number in `min..max` (`min` excluded when `minExclusive`).
 * Message: `a number in 0..1`, `a number in 0 (exclusive)..1`, `a number >= 0`.
 */
export function numberIn(
  path: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
  minExclusive = false,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw typeError(path, describe("a number", min, max, minExclusive), value);
  }
  if (!Number.isFinite(value) || value > max || (minExclusive ? value <= min : value < min)) {
    throw rangeError(path, describe("a number", min, max, minExclusive), value);
  }
  return value;
}

/** Reads an optional integer in `min..max`. Message: `an integer in 1..65535`, `an integer >= 1`. */
export function integerIn(
  path: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw typeError(path, describe("an integer", min, max, false), value);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(path, describe("an integer", min, max, false), value);
  }
  return value;
}

/**
 * Reads an optional duration in milliseconds in `min..max` (default `0..MAX_TIMER_MS`).
 * Message: `a duration in ms in 0..2147483647`.
 */
export function duration(
  path: string,
  value: unknown,
  fallback: number,
  min = 0,
  max = MAX_TIMER_MS,
): number {
  if (value === undefined) return fallback;
  const what = `a duration in ms in ${min}..${max}`;
  if (typeof value !== "number" || Number.isNaN(value)) throw typeError(path, what, value);
  if (!(value >= min && value <= max)) throw rangeError(path, what, value);
  return value;
}

/** Reads an optional boolean. */
export function bool(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw typeError(path, "a boolean", value);
  return value;
}

/** Reads a non-empty string; optional when a `fallback` is given, required otherwise. */
export function nonEmptyString(path: string, value: unknown, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "string" || value.length === 0) {
    throw typeError(path, "a non-empty string", value);
  }
  return value;
}

/** Reads an optional {@link Clock}: anything with a `now()` method. */
export function clockOption<C extends Clock = Clock>(path: string, value: unknown, fallback: C): C {
  if (value === undefined) return fallback;
  if (
    value === null ||
    typeof value !== "object" ||
    typeof (value as { now?: unknown }).now !== "function"
  ) {
    throw typeError(path, "a clock { now(): number }", value);
  }
  return value as C;
}

/** Reads an optional source of random numbers in [0, 1), `Math.random` by default. */
export function randomOption(path: string, value: unknown): () => number {
  if (value === undefined) return Math.random;
  if (typeof value !== "function") throw typeError(path, "a function returning [0, 1)", value);
  return value as () => number;
}

function describe(kind: string, min: number, max: number, minExclusive: boolean): string {
  if (max === Number.POSITIVE_INFINITY) return `${kind} ${minExclusive ? ">" : ">="} ${min}`;
  return `${kind} in ${min}${minExclusive ? " (exclusive)" : ""}..${max}`;
}
