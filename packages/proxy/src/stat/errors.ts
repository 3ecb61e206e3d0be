/** Stable codes of {@link StatError}. */
export type StatErrorCode =
  /** The admin server could not be reached, timed out or answered with a non-200 status. */
  | "MESH_PROXY_STAT_SCRAPE_FAILED"
  /** `/metrics` was not valid Prometheus text, or `/endpoints` not the expected JSON. */
  | "MESH_PROXY_STAT_BAD_RESPONSE";

/** An error of `mesh-proxy stat`, reported per admin row rather than thrown out of the CLI. */
export class StatError extends Error {
  /** A stable code to branch on. */
  readonly code: StatErrorCode;

  constructor(code: StatErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StatError";
    this.code = code;
  }
}
