/** Renders a bad value for an error message: strings quoted, objects summarised. */
export function show(value: unknown): string {
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

/** Validates an optional duration in milliseconds (`min`..`max`, integer or not). */
export function optionalMs(
  path: string,
  value: unknown,
  fallback: number,
  min = 1,
  max = 2_147_483_647,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value))
    throw typeError(path, "a number of milliseconds", value);
  if (!(value >= min && value <= max))
    throw rangeError(path, `a number of milliseconds in ${min}..${max}`, value);
  return value;
}

/** Validates an optional plain options object. */
export function optionsObject<T extends object>(path: string, value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw typeError(path, "an options object", value);
  return value;
}
