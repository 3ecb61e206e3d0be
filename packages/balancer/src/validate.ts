/** Renders a bad value for an error message without dumping huge objects. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value == null)
    return String(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return typeof value;
  }
}

/** `<path>: expected <what>, got <value>` as a TypeError. */
export function typeError(path: string, what: string, value: unknown): TypeError {
  return new TypeError(`${path}: expected ${what}, got ${show(value)}`);
}

/** `<path>: expected <what>, got <value>` as a RangeError. */
export function rangeError(path: string, what: string, value: unknown): RangeError {
  return new RangeError(`${path}: expected ${what}, got ${show(value)}`);
}

/** A finite number in [min, max], or the fallback when undefined. */
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
    throw typeError(path, describe(min, max, minExclusive), value);
  }
  if (!Number.isFinite(value) || value > max || (minExclusive ? value <= min : value < min)) {
    throw rangeError(path, describe(min, max, minExclusive), value);
  }
  return value;
}

/** A duration in milliseconds: a finite number in [min, max]. */
export function duration(
  path: string,
  value: unknown,
  fallback: number,
  min = 0,
  max = 2_147_483_647,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw typeError(path, `a duration in ms in ${min}..${max}`, value);
  }
  if (!Number.isFinite(value) || value < min || value > max) {
    throw rangeError(path, `a duration in ms in ${min}..${max}`, value);
  }
  return value;
}

/** An integer in [min, max], or the fallback when undefined. */
export function integerIn(
  path: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw typeError(path, `an integer in ${min}..${max}`, value);
  }
  if (value < min || value > max) throw rangeError(path, `an integer in ${min}..${max}`, value);
  return value;
}

/** A plain object (or undefined, returned as an empty object). */
export function objectOrEmpty<T extends object>(path: string, value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw typeError(path, "an object", value);
  }
  return value;
}

function describe(min: number, max: number, minExclusive: boolean): string {
  if (max === Number.POSITIVE_INFINITY)
    return `a finite number ${minExclusive ? ">" : ">="} ${min}`;
  return `a number in ${min}${minExclusive ? " (exclusive)" : ""}..${max}`;
}

/**
 * Rejects option names `known` does not list, so a misspelt or foreign option (say undici's
 * `connections` at the top level instead of under `pool`) fails loudly instead of being
 * ignored. Checked once at construction.
 */
export function rejectUnknownOptions(
  path: string,
  options: object,
  known: readonly string[],
): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const hint = key === "connections" ? ` (undici Pool options go under "pool")` : "";
    throw new TypeError(
      `${path}: unknown option ${JSON.stringify(key)}${hint}; expected one of ${known.join(", ")}`,
    );
  }
}
