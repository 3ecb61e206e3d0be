/**
 * Option validation in the house format: `<path>: expected <what>, got <value>`.
 * TypeError for wrong types, RangeError for values out of range.
 */

/** Renders a bad value for an error message, compactly and without throwing. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  if (value === null || typeof value !== "object") return String(value);
  try {
    const json = JSON.stringify(value);
    return json.length > 60 ? `${json.slice(0, 57)}...` : json;
  } catch {
    return "an object";
  }
}

export function typeError(path: string, what: string, value: unknown): TypeError {
  return new TypeError(`${path}: expected ${what}, got ${show(value)}`);
}

export function rangeError(path: string, what: string, value: unknown): RangeError {
  return new RangeError(`${path}: expected ${what}, got ${show(value)}`);
}

/** Reads an optional finite number in [min, max]; returns `fallback` when undefined. */
export function numberIn(
  path: string,
  value: unknown,
  min: number,
  max: number,
  fallback: number,
  integer = false,
): number {
  if (value === undefined) return fallback;
  const what = `${integer ? "an integer" : "a number"} in ${min}..${max}`;
  if (typeof value !== "number" || Number.isNaN(value)) throw typeError(path, what, value);
  if (value < min || value > max || (integer && !Number.isInteger(value))) {
    throw rangeError(path, what, value);
  }
  return value;
}

/** Reads an optional boolean. */
export function bool(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw typeError(path, "a boolean", value);
  return value;
}

/** Reads an optional non-empty string. */
export function str(path: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value.length === 0) {
    throw typeError(path, "a non-empty string", value);
  }
  return value;
}

/** Reads an optional plain object (options bag). */
export function object<T extends object>(path: string, value: unknown): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw typeError(path, "an options object", value);
  }
  return value as Partial<T>;
}

/** Reads an optional `{ now(): number }`. */
export function clockOption<C>(path: string, value: unknown, fallback: C): C {
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

/** Reads an optional `() => number` in [0, 1). */
export function randomOption(path: string, value: unknown): () => number {
  if (value === undefined) return Math.random;
  if (typeof value !== "function") throw typeError(path, "a function returning [0, 1)", value);
  return value as () => number;
}
