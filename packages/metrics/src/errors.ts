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
