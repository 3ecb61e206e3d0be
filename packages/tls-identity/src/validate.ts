/** Renders a bad option value for an error message. */
function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return "an array";
  return "an object";
}

/** `<path>: expected <what>, got <value>` as a TypeError. */
export function typeError(path: string, what: string, value: unknown): TypeError {
  return new TypeError(`${path}: expected ${what}, got ${show(value)}`);
}

/** `<path>: expected <what>, got <value>` as a RangeError. */
export function rangeError(path: string, what: string, value: unknown): RangeError {
  return new RangeError(`${path}: expected ${what}, got ${show(value)}`);
}

/** Validates an optional positive finite duration in milliseconds. */
export function optionalDuration(
  path: string,
  value: unknown,
  fallback: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value))
    throw typeError(path, "a number of milliseconds", value);
  if (!Number.isFinite(value) || value < min || value > max)
    throw rangeError(path, `a number of milliseconds in ${min}..${max}`, value);
  return value;
}

/** Validates a required non-empty string. */
export function requiredString(path: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0)
    throw typeError(path, "a non-empty string", value);
  return value;
}

/** Validates that `value` is a plain options object (or undefined). */
export function optionsObject<T extends object>(path: string, value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw typeError(path, "an options object", value);
  return value;
}
