/**
 * TEMPORARY: the few @mesh/core pieces this package needs, with @mesh/core's exact
 * signatures (issue-15 branch), until @mesh/core lands on main. When it does, every import
 * of "../shared.js" becomes an import of "@mesh/core" and this file is deleted.
 */

/** A source of time in milliseconds. Only differences between readings are used. */
export interface Clock {
  /** The current time in milliseconds. */
  now(): number;
}

const perf = performance;
/** The default clock: monotonic, from `performance.now()`. */
export const monotonicClock: Clock = { now: () => perf.now() };

/** Base of the runtime errors `@mesh` packages throw; `code` is stable. */
export class MeshError<Code extends string = string> extends Error {
  readonly code: Code;
  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MeshError";
    this.code = code;
  }
}

export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
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

function describe(kind: string, min: number, max: number, minExclusive: boolean): string {
  const lo = minExclusive ? `${min} (exclusive)` : `${min}`;
  return max === Number.POSITIVE_INFINITY
    ? `${kind} ${minExclusive ? ">" : ">="} ${min}`
    : `${kind} in ${lo}..${max}`;
}

export function numberIn(
  path: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
  minExclusive = false,
): number {
  if (value === undefined) return fallback;
  const what = describe("a number", min, max, minExclusive);
  if (typeof value !== "number" || Number.isNaN(value)) throw typeError(path, what, value);
  if (!Number.isFinite(value) || value > max || (minExclusive ? value <= min : value < min)) {
    throw rangeError(path, what, value);
  }
  return value;
}

export function integerIn(
  path: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  const what = describe("an integer", min, max, false);
  if (typeof value !== "number" || Number.isNaN(value)) throw typeError(path, what, value);
  if (!Number.isInteger(value) || value < min || value > max) throw rangeError(path, what, value);
  return value;
}

export function nonEmptyString(path: string, value: unknown, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "string" || value.length === 0) {
    throw typeError(path, "a non-empty string", value);
  }
  return value;
}

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

export function randomOption(path: string, value: unknown): () => number {
  if (value === undefined) return Math.random;
  if (typeof value !== "function") throw typeError(path, "a function returning [0, 1)", value);
  return value as () => number;
}

/** The option names an options bag may contain. */
export interface OptionNames {
  readonly known: readonly string[];
  readonly hints?: Readonly<Record<string, string>>;
}

export function optionsObject<T extends object>(
  path: string,
  value: unknown,
  names: OptionNames,
): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw typeError(path, "an options object", value);
  }
  for (const key of Object.keys(value)) {
    if (!names.known.includes(key)) {
      const hint = names.hints?.[key];
      const tail =
        hint === undefined
          ? `known options: ${names.known.join(", ")}`
          : `did you mean ${JSON.stringify(hint)}?`;
      throw new TypeError(`${path}: unknown option ${JSON.stringify(key)} (${tail})`);
    }
  }
  return value as Partial<T>;
}
