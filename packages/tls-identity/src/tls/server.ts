import type { EventEmitter } from "node:events";
import type { TLSSocket, Server as TlsServer } from "node:tls";
import { typeError } from "@mesh/core";
import type { SpiffeIdMatcher } from "../spiffe-id/matchers.js";
import { type IdentityMaterial, serverTlsOptions } from "./options.js";
import { checkPeer, PeerIdentityError, rememberPeer } from "./peer.js";

/** A server that can swap certificates for new connections (tls, https, http2 secure). */
type SecureServer = Pick<TlsServer, "setSecureContext" | "emit"> & { rejectUnauthorized?: boolean };

/** Something that announces new identity material (an {@link SvidSource}). */
interface RotatingMaterial extends IdentityMaterial, Pick<EventEmitter, "on" | "off"> {}

/** Options of {@link secureServer}. @public */
export interface SecureServerOptions {
  /**
   * Which client identities may connect. Called once per connection after the chain has
   * been verified against the bundle. Use the matchers (`matchTrustDomain`, `matchPath`,
   * ...) or your own function.
   */
  authorize: SpiffeIdMatcher;
}

/**
 * Handle returned by {@link secureServer}. @public
 */
export interface SecureServerBinding {
  /** Stops rotating and authorizing (existing connections are unaffected). */
  close(): void;
}

/** Why a client was refused: chain errors get their OpenSSL reason in the message. */
function refusal(socket: TLSSocket, authorize: SpiffeIdMatcher): PeerIdentityError | undefined {
  if (!socket.authorized) {
    const reason = socket.authorizationError;
    const cert = socket.getPeerCertificate();
    if (!cert?.raw)
      return new PeerIdentityError(
        "MESH_IDENTITY_PEER_UNTRUSTED",
        "client presented no certificate",
      );
    const code = typeof reason === "string" ? reason : (reason as Error | undefined)?.message;
    return new PeerIdentityError(
      "MESH_IDENTITY_PEER_UNTRUSTED",
      `client certificate was not verified by the trust bundle: ${code ?? "unknown reason"}`,
    );
  }
  const r = checkPeer(socket.getPeerCertificate(), authorize, "the authorizer", "client");
  if (r instanceof PeerIdentityError) return r;
  rememberPeer(socket, r);
  return undefined;
}

/**
 * Binds a TLS server (node:tls, node:https or node:http2 secure server created with
 * {@link serverTlsOptions}) to an identity:
 *
 * - every new connection is checked before any application listener (or the HTTP/HTTP2
 *   machinery) sees it: the client chain must verify against the bundle and `authorize`
 *   must accept its SPIFFE ID. A refused connection is destroyed and reported on the
 *   server's `tlsClientError` event with a {@link PeerIdentityError} saying why (no
 *   certificate, expired, untrusted CA, identity not authorized);
 * - when `material` is an {@link SvidSource}, each `update` calls
 *   `server.setSecureContext(...)`, so new connections use the new SVID and bundle while
 *   established ones continue undisturbed.
 *
 * Read an accepted connection's peer ID with {@link peerSpiffeId}.
 *
 * @public
 */
export function secureServer(
  server: SecureServer,
  material: IdentityMaterial,
  options: SecureServerOptions,
): SecureServerBinding {
  const authorize = options?.authorize;
  if (typeof authorize !== "function")
    throw typeError("options.authorize", "a function (SpiffeId) => boolean", authorize);
  // Node would silently destroy a socket whose chain failed, losing the reason; let the
  // handshake finish and refuse it here with the reason instead. Nothing reaches the
  // application until the check below passes.
  const previousReject = server.rejectUnauthorized;
  server.rejectUnauthorized = false;
  const originalEmit = server.emit as (
    this: unknown,
    event: string | symbol,
    ...args: unknown[]
  ) => boolean;
  const emit = function (this: SecureServer, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "secureConnection") {
      const socket = args[0] as TLSSocket;
      const err = refusal(socket, authorize);
      if (err) {
        originalEmit.call(this, "tlsClientError", err, socket);
        socket.destroy();
        return true;
      }
    }
    return originalEmit.call(this, event, ...args);
  };
  server.emit = emit as SecureServer["emit"];
  const rotating = isRotating(material) ? material : undefined;
  // setSecureContext also re-reads rejectUnauthorized: keep the check here.
  const onUpdate = () =>
    server.setSecureContext({
      ...serverTlsOptions(material),
      rejectUnauthorized: false,
    } as Parameters<SecureServer["setSecureContext"]>[0]);
  rotating?.on("update", onUpdate);
  return {
    close() {
      if (server.emit === emit) server.emit = originalEmit as SecureServer["emit"];
      server.rejectUnauthorized = previousReject;
      rotating?.off("update", onUpdate);
    },
  };
}

function isRotating(m: IdentityMaterial): m is RotatingMaterial {
  return (
    typeof (m as Partial<RotatingMaterial>).on === "function" &&
    typeof (m as Partial<RotatingMaterial>).off === "function"
  );
}
