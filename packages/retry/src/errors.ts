/** Every stable `code` this package's errors carry; `@mesh/proxy` maps each to a status. */
export const retryErrorCodes = [
  "MESH_RETRY_CIRCUIT_OPEN",
  "MESH_RETRY_REQUEST_TIMEOUT",
  "MESH_RETRY_PER_TRY_TIMEOUT",
  "MESH_RETRY_IDLE_TIMEOUT",
] as const;

/** A stable error code of this package. */
export type RetryErrorCode = (typeof retryErrorCodes)[number];
