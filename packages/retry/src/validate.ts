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

/**
 * What an options bag may contain: every option name, and hints for names users bring from
 * other libraries (undici's RetryAgent, Envoy, opossum...), keyed by that name.
 */
export interface OptionNames {
  readonly known: readonly string[];
  readonly hints?: Readonly<Record<string, string>>;
}

/**
 * Reads an optional plain object (options bag) whose keys must all be in `names.known`.
 * An unknown key throws `TypeError: <path>: unknown option "<key>" (did you mean "<hint>"?)`
 * so that a misspelt or foreign option cannot be silently ignored.
 */
export function object<T extends object>(
  path: string,
  value: unknown,
  names: OptionNames,
): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw typeError(path, "an options object", value);
  }
  for (const key of Object.keys(value)) {
    if (!names.known.includes(key)) throw unknownOption(path, key, names);
  }
  return value as Partial<T>;
}

function unknownOption(path: string, key: string, names: OptionNames): TypeError {
  const hint = suggest(key, names);
  const tail =
    hint === undefined ? `known options: ${names.known.join(", ")}` : `did you mean ${hint}?`;
  return new TypeError(`${path}: unknown option ${JSON.stringify(key)} (${tail})`);
}

/**
 * The closest known name to `key`: a hint for a foreign name, the same name in another case,
 * or the nearest name within a few edits. Rendered quoted unless the hint is prose.
 */
export function suggest(key: string, names: OptionNames): string | undefined {
  const hint =
    names.hints !== undefined && Object.hasOwn(names.hints, key) ? names.hints[key] : undefined;
  if (hint !== undefined) return /^[\w.]+$/.test(hint) ? JSON.stringify(hint) : hint;
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const name of names.known) {
    const d = name.toLowerCase() === lower ? 0 : editDistance(lower, name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best === undefined ? undefined : JSON.stringify(best);
}

/** Edits (insert, delete, substitute, swap two adjacent letters) turning `a` into `b`. */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(
        d[(i - 1) * cols + j]! + 1,
        d[i * cols + j - 1]! + 1,
        d[(i - 1) * cols + j - 1]! + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      }
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
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
