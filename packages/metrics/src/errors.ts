import { MeshError } from "@mesh/core";

/** Every stable `code` this package's errors carry. */
export const metricsErrorCodes = [
  "MESH_METRICS_DUPLICATE_METRIC",
  "MESH_METRICS_LABEL_MISMATCH",
  "MESH_METRICS_INVALID_NAME",
] as const;

/** Stable codes of the errors this package throws. */
export type MetricsErrorCode = (typeof metricsErrorCodes)[number];

/** An error a caller may branch on, with a stable `code`. */
export class MetricsError extends MeshError<MetricsErrorCode> {
  constructor(code: MetricsErrorCode, message: string) {
    super(code, message);
    this.name = "MetricsError";
  }
}
