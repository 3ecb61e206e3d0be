import { MetricsError } from "../errors.js";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Throws unless `name` is a valid Prometheus metric name. */
export function assertMetricName(name: string): void {
  if (!METRIC_NAME.test(name)) {
    throw new MetricsError(
      "MESH_METRICS_INVALID_NAME",
      `name: expected a Prometheus metric name, got ${JSON.stringify(name)}`,
    );
  }
}

/** Throws unless `name` is a valid, non-reserved Prometheus label name. */
export function assertLabelName(name: string): void {
  if (!LABEL_NAME.test(name) || name.startsWith("__") || name === "le") {
    throw new MetricsError(
      "MESH_METRICS_INVALID_NAME",
      `labelNames: expected a Prometheus label name (not "le" or "__*"), got ${JSON.stringify(name)}`,
    );
  }
}

/** Escapes a label value for the text exposition format (backslash, quote, newline). */
export function escapeLabelValue(value: string): string {
  if (!/[\\"\n]/.test(value)) return value;
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Escapes HELP text (backslash, newline). */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Label values by label name. A missing or empty value means "label absent". */
export type Labels = Readonly<Record<string, string | undefined>>;

/**
 * Renders labels as `a="x",b="y"` in the given name order, omitting empty values
 * (Prometheus treats an empty label as an absent one). The result is both the exposition
 * fragment and the interning key of a series.
 */
export function labelText(names: readonly string[], labels: Labels): string {
  let out = "";
  for (const name of names) {
    const v = labels[name];
    if (v === undefined || v === "") continue;
    if (out !== "") out += ",";
    out += `${name}="${escapeLabelValue(v)}"`;
  }
  return out;
}

/**
 * Bounds the number of distinct values one label may take. Values beyond the cap map to
 * `overflowValue` and are counted in `overflowed`. `retain` forgets values no longer in
 * use so new ones can be admitted after idle series expire.
 */
export class LabelLimiter {
  /** The value that replaces label values over the cap. */
  readonly overflowValue: string;
  /** Maximum distinct values admitted. */
  readonly max: number;
  /** How many resolutions were mapped to `overflowValue`. */
  overflowed = 0;
  readonly #admitted = new Set<string>();

  constructor(max: number, overflowValue = "other") {
    this.max = max;
    this.overflowValue = overflowValue;
  }

  /** Returns `value` if admitted (already known or under the cap), else the overflow value. */
  admit(value: string): string {
    if (this.#admitted.has(value)) return value;
    if (this.#admitted.size < this.max) {
      this.#admitted.add(value);
      return value;
    }
    this.overflowed++;
    return this.overflowValue;
  }

  /** Keeps only the given values (those still used by live series). */
  retain(values: Iterable<string>): void {
    this.#admitted.clear();
    for (const v of values) if (v !== this.overflowValue) this.#admitted.add(v);
  }

  /** Number of distinct values currently admitted. */
  get size(): number {
    return this.#admitted.size;
  }
}
