import { MeshError } from "@mesh/core";

/** Stable codes of {@link MeshTlsError}. @public */
export const meshTlsErrorCodes = [
  "MESH_PROXY_IDENTITY_MISMATCH",
  "MESH_PROXY_TLS_UNTRUSTED",
  "MESH_PROXY_TLS_HANDSHAKE",
  "MESH_PROXY_TLS_REFUSED",
  "MESH_PROXY_IDENTITY_NOT_READY",
  "MESH_PROXY_IDENTITY_SETUP",
] as const;

/** A stable code of {@link MeshTlsError}. @public */
export type MeshTlsErrorCode = (typeof meshTlsErrorCodes)[number];

/**
 * An mTLS failure between proxies, or an identity that cannot be set up.
 * - `MESH_PROXY_IDENTITY_MISMATCH`: the server's SPIFFE ID is not the expected one (or it
 *   has none) — outbound answers 502 with `mesh-proxy-error: identity mismatch`;
 * - `MESH_PROXY_TLS_UNTRUSTED`: the server chain does not verify against the bundle;
 * - `MESH_PROXY_TLS_HANDSHAKE`: any other TLS failure (version, ALPN, alert);
 * - `MESH_PROXY_TLS_REFUSED`: inbound refused a client (no/untrusted certificate,
 *   not authorized, handshake failure or timeout);
 * - `MESH_PROXY_IDENTITY_NOT_READY`: no SVID yet;
 * - `MESH_PROXY_IDENTITY_SETUP`: the identity config points at something unusable.
 *
 * `reason` is a short lowercase phrase for the `mesh-proxy-error` header and metrics;
 * `message` has the details. `cause` is the underlying error.
 *
 * @public
 */
export class MeshTlsError extends MeshError<MeshTlsErrorCode> {
  readonly reason: string;
  /** The peer's SPIFFE ID when it presented a valid one. */
  readonly peerId: string | undefined;
  constructor(
    code: MeshTlsErrorCode,
    reason: string,
    message: string,
    cause?: unknown,
    peerId?: string,
  ) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = "MeshTlsError";
    this.reason = reason;
    this.peerId = peerId;
  }
}

/** OpenSSL certificate-chain verification codes (the chain is not trusted). */
const CHAIN_CODES = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_CHAIN_TOO_LONG",
]);

/**
 * Maps a client-side connect error to a {@link MeshTlsError} when it is a TLS/identity
 * failure; other errors (refused, reset, timeout) are returned unchanged.
 *
 * @param target - `host:port`, for the message.
 * @public
 */
export function outboundTlsError(err: Error, target: string): Error {
  const code = (err as { code?: string }).code ?? "";
  if (code === "MESH_IDENTITY_PEER_REJECTED" || code === "MESH_IDENTITY_PEER_NO_ID")
    return new MeshTlsError(
      "MESH_PROXY_IDENTITY_MISMATCH",
      "identity mismatch",
      `mTLS to ${target}: ${err.message}`,
      err,
      (err as { peerId?: string }).peerId,
    );
  if (CHAIN_CODES.has(code))
    return new MeshTlsError(
      "MESH_PROXY_TLS_UNTRUSTED",
      "untrusted server certificate",
      `mTLS to ${target}: the server certificate is not trusted by the bundle (${code})`,
      err,
    );
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_"))
    return new MeshTlsError(
      "MESH_PROXY_TLS_HANDSHAKE",
      "tls handshake failed",
      `mTLS to ${target}: TLS handshake failed: ${err.message}`,
      err,
    );
  return err;
}
