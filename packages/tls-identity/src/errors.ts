import { MeshError } from "@mesh/core";

/**
 * Every stable `code` this package's errors carry, for runtime failures a caller may branch
 * on; `@mesh/proxy` maps each to a status.
 *
 * @public
 */
export const identityErrorCodes = [
  "MESH_IDENTITY_INVALID_SPIFFE_ID",
  "MESH_IDENTITY_INVALID_PEM",
  "MESH_IDENTITY_INVALID_CERTIFICATE",
  "MESH_IDENTITY_CSR_MALFORMED",
  "MESH_IDENTITY_CSR_SIGNATURE",
  "MESH_IDENTITY_KEY_TYPE_NOT_ALLOWED",
  "MESH_IDENTITY_ID_MISMATCH",
  "MESH_IDENTITY_EXTRA_SAN",
  "MESH_IDENTITY_CA_EXPIRED",
  "MESH_IDENTITY_UNAUTHENTICATED",
  "MESH_IDENTITY_AUTHENTICATOR_UNAVAILABLE",
  "MESH_IDENTITY_AUTHENTICATOR_SETUP",
  "MESH_IDENTITY_ISSUER_UNAVAILABLE",
  "MESH_IDENTITY_ISSUER_REJECTED",
  "MESH_IDENTITY_NOT_READY",
  "MESH_IDENTITY_SOURCE_CLOSED",
  "MESH_IDENTITY_PEER_NO_ID",
  "MESH_IDENTITY_PEER_UNTRUSTED",
  "MESH_IDENTITY_PEER_REJECTED",
  "MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE",
  "MESH_IDENTITY_WORKLOAD_API_INVALID",
] as const;

/**
 * A stable error code of this package.
 *
 * @public
 */
export type IdentityErrorCode = (typeof identityErrorCodes)[number];

/**
 * Base class of every runtime error this package throws, {@link SpiffeIdError} and
 * {@link PeerIdentityError} included. `code` is stable across releases; messages are not.
 *
 * @public
 */
export class IdentityError extends MeshError<IdentityErrorCode> {
  constructor(code: IdentityErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "IdentityError";
  }
}
