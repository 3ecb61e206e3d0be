import {
  type ConnectionOptions,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
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

/**
 * The key-exchange groups mesh connections offer, most preferred first: the
 * post-quantum hybrid `X25519MLKEM768` (ML-KEM-768 + X25519, what Linkerd 2.19 and
 * browsers default to), then the classical `X25519` and `P-256` for peers without it.
 * Groups the runtime's OpenSSL does not know are left out (see {@link keyExchangeGroups}).
 *
 * @public
 */
export const MESH_KEY_EXCHANGE_GROUPS: readonly string[] = Object.freeze([
  "X25519MLKEM768",
  "X25519",
  "P-256",
]);

const groupSupport = new Map<string, boolean>();

/** Whether this runtime's OpenSSL accepts `group` as a key-exchange group (memoized). */
function groupSupported(group: string): boolean {
  let ok = groupSupport.get(group);
  if (ok === undefined) {
    try {
      createSecureContext({ ecdhCurve: group });
      ok = true;
    } catch {
      ok = false;
    }
    groupSupport.set(group, ok);
  }
  return ok;
}

/**
 * The `ecdhCurve` string for `groups` (default {@link MESH_KEY_EXCHANGE_GROUPS}) on this
 * runtime: the groups its OpenSSL knows, in the given order, joined with `:`. OpenSSL 3.5
 * (Node 24) knows `X25519MLKEM768`; OpenSSL 3.0 (Node 22) does not and would refuse the
 * whole list, so there the list degrades to the classical groups instead of throwing.
 * Throws a `RangeError` if none of the groups is known.
 *
 * @public
 */
export function keyExchangeGroups(groups: readonly string[] = MESH_KEY_EXCHANGE_GROUPS): string {
  const known = groups.filter(groupSupported);
  if (known.length === 0)
    throw new RangeError(
      `groups: expected at least one key-exchange group this runtime's OpenSSL supports, got ${JSON.stringify(groups)}`,
    );
  return known.join(":");
}

let defaultGroups: string | undefined;

/**
 * The TLS protocol settings every mesh connection uses: TLS 1.3 only, the post-quantum
 * hybrid group preferred (computed once, on first use).
 */
function tls13(): { minVersion: "TLSv1.3"; maxVersion: "TLSv1.3"; ecdhCurve: string } {
  defaultGroups ??= keyExchangeGroups();
  return { minVersion: "TLSv1.3", maxVersion: "TLSv1.3", ecdhCurve: defaultGroups };
}

/**
 * The key-exchange group a TLS connection negotiated (`"X25519MLKEM768"`, `"X25519"`,
 * `"P-256"` …), read on the client side with `getEphemeralKeyInfo()`. Node cannot report
 * it on the server side of a connection; there (and before the handshake) this returns
 * `undefined`.
 *
 * @public
 */
export function negotiatedGroup(socket: TLSSocket): string | undefined {
  const info = socket.getEphemeralKeyInfo() as { name?: unknown } | null;
  return typeof info?.name === "string" && info.name !== "" ? info.name : undefined;
}

/**
 * Options for a `node:tls` / `node:https` / `node:http2` secure server: TLS 1.3 only, the
 * post-quantum hybrid key exchange preferred ({@link MESH_KEY_EXCHANGE_GROUPS}), the
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
    ...tls13(),
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
      ...tls13(),
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
 * TLS 1.3 only, the post-quantum hybrid key exchange preferred, this SVID as the client certificate, the server chain verified against
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
    ...tls13(),
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
