/** Stable codes of the errors this package throws. */
export type MetricsErrorCode =
  | "MESH_METRICS_DUPLICATE_METRIC"
  | "MESH_METRICS_LABEL_MISMATCH"
  | "MESH_METRICS_INVALID_NAME";

/** An error a caller may branch on, with a stable `code`. */
export class MetricsError extends Error {
  /** Stable machine-readable code. */
  readonly code: MetricsErrorCode;
  constructor(code: MetricsErrorCode, message: string) {
    super(message);
    this.name = "MetricsError";
    this.code = code;
  }
}

/** Renders a value for an option error message. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (value === null) return "null";
  if (typeof value === "object") {
    try {
      return JSON.stringify(value);
    } catch {
      return "an object";
    }
  }
  return String(value);
}

/** Throws `TypeError` in the `<path>: expected <what>, got <value>` format. */
export function typeError(path: string, what: string, value: unknown): never {
  throw new TypeError(`${path}: expected ${what}, got ${describe(value)}`);
}

/** Throws `RangeError` in the `<path>: expected <what>, got <value>` format. */
export function rangeError(path: string, what: string, value: unknown): never {
  throw new RangeError(`${path}: expected ${what}, got ${describe(value)}`);
}

/** Validates an optional positive integer option. */
export function positiveInt(path: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") typeError(path, "a positive integer", value);
  if (!Number.isInteger(value) || value < 1) rangeError(path, "a positive integer", value);
  return value;
}

/** Validates an optional positive finite number option. */
export function positiveNumber(path: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") typeError(path, "a positive number", value);
  if (!Number.isFinite(value) || value <= 0) rangeError(path, "a positive number", value);
  return value;
}
