import type { X509Certificate } from "node:crypto";
import { IdentityError } from "../errors.js";
import { certificatesToPem, parseCertificatesPem } from "../x509/certificate.js";

/**
 * The set of trust anchors (root CA certificates) peers' chains are checked against.
 * Several anchors at once let roots rotate: publish the new root in the bundle, move
 * issuers to it, then drop the old one. Immutable; `with`/`without` return new bundles.
 *
 * @public
 */
export class TrustBundle {
  /** The anchors, in insertion order, deduplicated by fingerprint. */
  readonly certificates: readonly X509Certificate[];
  /** All anchors as concatenated PEM (what `tls` wants as `ca`). */
  readonly pem: string;

  /**
   * @throws IdentityError `MESH_IDENTITY_INVALID_CERTIFICATE` when a certificate is not a CA
   * or the bundle is empty.
   */
  constructor(certificates: Iterable<X509Certificate>) {
    const seen = new Set<string>();
    const list: X509Certificate[] = [];
    for (const c of certificates) {
      if (!c.ca)
        throw new IdentityError(
          "MESH_IDENTITY_INVALID_CERTIFICATE",
          `trust bundle: ${c.subject.replaceAll("\n", ", ")} is not a CA certificate`,
        );
      if (seen.has(c.fingerprint256)) continue;
      seen.add(c.fingerprint256);
      list.push(c);
    }
    if (list.length === 0)
      throw new IdentityError("MESH_IDENTITY_INVALID_CERTIFICATE", "trust bundle: no anchors");
    this.certificates = Object.freeze(list);
    this.pem = certificatesToPem(list);
  }

  /** Parses a PEM bundle (one or more CERTIFICATE blocks). */
  static fromPem(pem: string | Buffer): TrustBundle {
    return new TrustBundle(parseCertificatesPem(pem, "trust bundle"));
  }

  /** A bundle with `cert` added. */
  with(cert: X509Certificate): TrustBundle {
    return new TrustBundle([...this.certificates, cert]);
  }

  /** A bundle without the anchor whose SHA-256 fingerprint is `fingerprint256`. */
  without(fingerprint256: string): TrustBundle {
    return new TrustBundle(this.certificates.filter((c) => c.fingerprint256 !== fingerprint256));
  }

  /** True when `cert` is one of the anchors. */
  has(cert: X509Certificate): boolean {
    return this.certificates.some((c) => c.fingerprint256 === cert.fingerprint256);
  }

  /** The PEM text. */
  toPem(): string {
    return this.pem;
  }
}
