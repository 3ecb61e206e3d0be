import type { PeerCertificate, TLSSocket } from "node:tls";
import { IdentityError } from "../errors.js";
import type { SpiffeIdMatcher } from "../spiffe-id/matchers.js";
import { matchExact } from "../spiffe-id/matchers.js";
import { parseSpiffeId, type SpiffeId, SpiffeIdError } from "../spiffe-id/spiffe-id.js";
import { uriSansOf } from "../x509/certificate.js";

/**
 * Raised (as the TLS error on the refusing side) when a peer's certificate chain is
 * trusted but its SPIFFE ID is missing or not authorized. `code` is
 * `MESH_IDENTITY_PEER_UNTRUSTED` (server side: no certificate or the chain did not verify),
 * `MESH_IDENTITY_PEER_NO_ID` or `MESH_IDENTITY_PEER_REJECTED`.
 *
 * @public
 */
export class PeerIdentityError extends IdentityError {
  /** The peer's SPIFFE ID when it had a valid one. */
  readonly peerId: string | undefined;
  constructor(
    code:
      | "MESH_IDENTITY_PEER_UNTRUSTED"
      | "MESH_IDENTITY_PEER_NO_ID"
      | "MESH_IDENTITY_PEER_REJECTED",
    message: string,
    peerId?: string,
  ) {
    super(code, message);
    this.name = "PeerIdentityError";
    this.peerId = peerId;
  }
}

/** What the local side accepts in a peer: an exact ID or a matcher. @public */
export type PeerExpectation = SpiffeId | string | SpiffeIdMatcher;

/** Turns an expectation into a matcher plus a description for error messages. */
export function toMatcher(expect: PeerExpectation): { match: SpiffeIdMatcher; describe: string } {
  if (typeof expect === "function") return { match: expect, describe: "the authorizer" };
  const text = typeof expect === "string" ? parseSpiffeId(expect).toString() : expect.toString();
  return { match: matchExact(text), describe: text };
}

/** The SPIFFE ID in a peer certificate (one URI SAN), or a PeerIdentityError. */
export function peerIdFromCertificate(
  cert: PeerCertificate | undefined,
  side: string,
): SpiffeId | PeerIdentityError {
  if (!cert?.raw)
    return new PeerIdentityError("MESH_IDENTITY_PEER_NO_ID", `${side} presented no certificate`);
  const uris = uriSansOf(cert);
  if (uris.length !== 1)
    return new PeerIdentityError(
      "MESH_IDENTITY_PEER_NO_ID",
      `${side} certificate is not an X.509-SVID: it has ${uris.length} URI SANs, expected exactly 1`,
    );
  try {
    return parseSpiffeId(uris[0] as string);
  } catch (err) {
    const rule = err instanceof SpiffeIdError ? err.message : String(err);
    return new PeerIdentityError(
      "MESH_IDENTITY_PEER_NO_ID",
      `${side} certificate URI SAN is not a SPIFFE ID: ${rule}`,
    );
  }
}

/** Checks a peer certificate against an expectation; returns the ID or the error. */
export function checkPeer(
  cert: PeerCertificate | undefined,
  match: SpiffeIdMatcher,
  describe: string,
  side: string,
): SpiffeId | PeerIdentityError {
  const id = peerIdFromCertificate(cert, side);
  if (id instanceof PeerIdentityError) return id;
  if (!match(id))
    return new PeerIdentityError(
      "MESH_IDENTITY_PEER_REJECTED",
      `${side} identity ${id} is not accepted by ${describe}`,
      id.toString(),
    );
  return id;
}

const peerIds = new WeakMap<TLSSocket, SpiffeId>();

/** @internal Records the authorized peer ID of a connection. */
export function rememberPeer(socket: TLSSocket, id: SpiffeId): void {
  peerIds.set(socket, id);
}

/**
 * The verified SPIFFE ID of the peer on a TLS socket: the one recorded when the
 * connection was authorized, or else parsed from the peer certificate if the chain was
 * verified. `undefined` for unauthenticated peers.
 *
 * @public
 */
export function peerSpiffeId(socket: TLSSocket): SpiffeId | undefined {
  const known = peerIds.get(socket);
  if (known) return known;
  if (!socket.authorized) return undefined;
  const id = peerIdFromCertificate(socket.getPeerCertificate(), "peer");
  if (id instanceof PeerIdentityError) return undefined;
  peerIds.set(socket, id);
  return id;
}
