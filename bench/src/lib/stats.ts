/** Small statistics helpers for rounds: median and min–max. */

/** Median, min and max of a set of per-round values. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Number of rounds that produced a value. */
  n: number;
}

/** Median and range of `values` (nulls ignored); `null` when there is none. */
export function spread(values: ReadonlyArray<number | null | undefined>): Spread | null {
  const xs = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (xs.length === 0) return null;
  xs.sort((a, b) => a - b);
  const mid = xs.length >> 1;
  const median = xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
  return { median, min: xs[0]!, max: xs[xs.length - 1]!, n: xs.length };
}

/** Rounds to `digits` significant decimals for JSON/report output. */
export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** `a / b`, or `null` when either side is missing or `b` is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (typeof a !== "number" || typeof b !== "number" || b === 0) return null;
  return a / b;
}
