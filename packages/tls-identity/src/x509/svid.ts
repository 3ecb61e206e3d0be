import { createPrivateKey, type KeyObject, type X509Certificate } from "node:crypto";
import { IdentityError } from "../errors.js";
import type { SpiffeId } from "../spiffe-id/spiffe-id.js";
import { certificatesToPem, parseCertificatesPem, spiffeIdOf, validityOf } from "./certificate.js";

const keyPems = new WeakMap<KeyObject, string>();

/**
 * In-memory PKCS#8 PEM of a key, for handing to `tls.createSecureContext` (which does
 * not take KeyObjects). Cached per key; never written anywhere by this package.
 */
export function keyPemForTls(key: KeyObject): string {
  let pem = keyPems.get(key);
  if (pem === undefined) {
    pem = key.export({ type: "pkcs8", format: "pem" }).toString();
    keyPems.set(key, pem);
  }
  return pem;
}

/**
 * An X.509-SVID: a leaf certificate carrying a SPIFFE ID, the intermediates up to (not
 * including) a trust anchor, and the private key. Immutable.
 *
 * @public
 */
export class X509Svid {
  /** The SPIFFE ID in the leaf's URI SAN. */
  readonly spiffeId: SpiffeId;
  /** Leaf first, then intermediates (no trust anchor). */
  readonly chain: readonly X509Certificate[];
  readonly privateKey: KeyObject;
  /** Validity of the leaf, ms since the epoch. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** Leaf serial number, hex. */
  readonly serialNumber: string;
  /** The chain as concatenated PEM. */
  readonly chainPem: string;

  /**
   * @throws IdentityError `MESH_IDENTITY_INVALID_CERTIFICATE` when the chain is empty, the
   * leaf is not an SVID, or the key does not belong to the leaf.
   */
  constructor(chain: readonly X509Certificate[], privateKey: KeyObject) {
    const leaf = chain[0];
    if (leaf === undefined)
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "an SVID needs at least a leaf certificate",
      );
    if (leaf.ca)
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "an X.509-SVID leaf must not be a CA certificate",
      );
    if (!leaf.checkPrivateKey(privateKey))
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "the private key does not match the leaf certificate",
      );
    this.spiffeId = spiffeIdOf(leaf);
    this.chain = Object.freeze([...chain]);
    this.privateKey = privateKey;
    const v = validityOf(leaf);
    this.notBefore = v.notBefore;
    this.notAfter = v.notAfter;
    this.serialNumber = leaf.serialNumber;
    this.chainPem = certificatesToPem(chain);
  }

  /** The leaf certificate. */
  get certificate(): X509Certificate {
    return this.chain[0] as X509Certificate;
  }

  /** Loads an SVID from a PEM chain (leaf first) and a PEM private key. */
  static fromPem(chainPem: string | Buffer, keyPem: string | Buffer): X509Svid {
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch (cause) {
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_PEM",
        `private key: ${(cause as Error).message}`,
        { cause },
      );
    }
    return new X509Svid(parseCertificatesPem(chainPem, "SVID chain"), key);
  }
}
