import { typeError } from "./errors.js";

/**
 * What an options bag may contain: every option name, and hints for names users bring from
 * other libraries (undici, Envoy, opossum...), keyed by that name. A hint that is a plain
 * name (`"limit"`, `"backoff.base"`) is rendered quoted; anything else as prose.
 */
export interface OptionNames {
  readonly known: readonly string[];
  readonly hints?: Readonly<Record<string, string>>;
}

/**
 * Reads an optional options bag: `undefined` becomes `{}`; anything but a plain object
 * (arrays, null, primitives) throws `TypeError: <path>: expected an options object, got …`.
 * With `names`, every key must be known, so a misspelt or foreign option cannot be silently
 * ignored: `TypeError: <path>: unknown option "<key>" (did you mean "<hint>"?)`, or
 * `(known options: a, b)` when nothing is close.
 */
export function optionsObject<T extends object>(
  path: string,
  value: T | undefined,
  names?: OptionNames,
): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw typeError(path, "an options object", value);
  }
  if (names !== undefined) {
    for (const key of Object.keys(value)) {
      if (!names.known.includes(key)) throw unknownOption(path, key, names);
    }
  }
  return value;
}

function unknownOption(path: string, key: string, names: OptionNames): TypeError {
  const hint = suggest(key, names);
  const tail =
    hint === undefined ? `known options: ${names.known.join(", ")}` : `did you mean ${hint}?`;
  return new TypeError(`${path}: unknown option ${JSON.stringify(key)} (${tail})`);
}

/**
 * The closest known name to `key`: a hint for a foreign name, the same name in another case,
 * or the nearest name within a few edits; rendered quoted unless the hint is prose.
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
