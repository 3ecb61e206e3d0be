import {
  type ConnectionOptions,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type TlsOptions,
} from "node:tls";
import type { TrustBundle } from "../bundle/trust-bundle.js";
import { keyPemForTls, type X509Svid } from "../x509/svid.js";
import { checkPeer, type PeerExpectation, PeerIdentityError, toMatcher } from "./peer.js";

/**
 * What TLS needs from an identity: the current SVID and the trust bundle. An
 * {@link SvidSource} satisfies it (reading its current values), as does a plain object.
 *
 * @public
 */
export interface IdentityMaterial {
  readonly svid: X509Svid;
  readonly bundle: TrustBundle;
}

/** The TLS protocol settings every mesh connection uses. */
const TLS13 = { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" } as const;

/**
 * Options for a `node:tls` / `node:https` / `node:http2` secure server: TLS 1.3 only, the
 * SVID chain and key, the bundle as the CA list, and a client certificate required and
 * verified against the bundle (`requestCert` + `rejectUnauthorized`). Checking the
 * client's SPIFFE ID needs the server itself: use {@link secureServer}, which also
 * rotates certificates.
 *
 * @public
 */
export function serverTlsOptions(material: IdentityMaterial): TlsOptions {
  const { svid, bundle } = material;
  return {
    ...TLS13,
    cert: svid.chainPem,
    key: keyPemForTls(svid.privateKey),
    ca: bundle.pem,
    requestCert: true,
    rejectUnauthorized: true,
  };
}

const contexts = new WeakMap<X509Svid, WeakMap<TrustBundle, SecureContext>>();

/**
 * A cached client `SecureContext` for an SVID + bundle pair, so new connections do not
 * re-parse PEM. A new SVID or bundle gets a new context.
 */
export function clientSecureContext(material: IdentityMaterial): SecureContext {
  const { svid, bundle } = material;
  let byBundle = contexts.get(svid);
  if (!byBundle) {
    byBundle = new WeakMap();
    contexts.set(svid, byBundle);
  }
  let ctx = byBundle.get(bundle);
  if (!ctx) {
    ctx = createSecureContext({
      ...TLS13,
      cert: svid.chainPem,
      key: keyPemForTls(svid.privateKey),
      ca: bundle.pem,
    });
    byBundle.set(bundle, ctx);
  }
  return ctx;
}

/** Options of {@link clientTlsOptions}. @public */
export interface ClientIdentityOptions {
  /**
   * The server identity to accept: an exact SPIFFE ID or a matcher. Required: a mesh
   * client always knows whom it means to talk to.
   */
  expect: PeerExpectation;
}

/**
 * Options for `tls.connect` / `https.request` / `http2.connect` (and undici's `connect`):
 * TLS 1.3 only, this SVID as the client certificate, the server chain verified against
 * the bundle, then the server's SPIFFE ID checked against `expect` in
 * `checkServerIdentity` (hostnames are not checked: SVIDs carry no DNS names). A refused
 * server fails the connection with a {@link PeerIdentityError}.
 *
 * The returned object is a snapshot; call again (or use {@link undiciConnector}) to pick
 * up a rotated SVID for new connections.
 *
 * @public
 */
export function clientTlsOptions(
  material: IdentityMaterial,
  options: ClientIdentityOptions,
): ConnectionOptions {
  return {
    ...TLS13,
    secureContext: clientSecureContext(material),
    rejectUnauthorized: true,
    checkServerIdentity: serverIdentityChecker(options.expect),
  };
}

/** A `checkServerIdentity` that checks the SPIFFE ID instead of the hostname. */
export function serverIdentityChecker(
  expect: PeerExpectation,
): (hostname: string, cert: PeerCertificate) => Error | undefined {
  const { match, describe } = toMatcher(expect);
  return (_hostname, cert) => {
    const r = checkPeer(cert, match, describe, "server");
    return r instanceof PeerIdentityError ? r : undefined;
  };
}
