import { MeshError } from "@mesh/core";
/**
 * Stable codes of {@link StatError}: the admin server could not be reached, timed out or
 * answered with a non-200 status; `/metrics` was not valid Prometheus text, or `/endpoints`
 * not the expected JSON.
 */
export const statErrorCodes = [
  "MESH_PROXY_STAT_SCRAPE_FAILED",
  "MESH_PROXY_STAT_BAD_RESPONSE",
] as const;

/** A stable code of {@link StatError}. */
export type StatErrorCode = (typeof statErrorCodes)[number];

/** An error of `mesh-proxy stat`, reported per admin row rather than thrown out of the CLI. */
export class StatError extends MeshError<StatErrorCode> {
  constructor(code: StatErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "StatError";
  }
}
