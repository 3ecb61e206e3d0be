import { type KeyObject, X509Certificate } from "node:crypto";
import { type Clock, duration, optionsObject, typeError } from "@mesh/core";
import { TrustBundle } from "../bundle/trust-bundle.js";
import { systemClock } from "../clock.js";
import { IdentityError } from "../errors.js";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  type KeyPair,
  type KeyType,
} from "../keys/keys.js";
import { parseTrustDomain } from "../spiffe-id/spiffe-id.js";
import {
  buildCertificate,
  buildName,
  type CertificateProfile,
  keyIdentifierOf,
  spkiOf,
  subjectNameOf,
} from "../x509/build.js";
import { parseCertificatesPem, validityOf } from "../x509/certificate.js";
import { computeValidity, DEFAULT_CLOCK_SKEW_MS } from "../x509/validity.js";
import { CertificateAuthority, type CertificateAuthorityOptions } from "./authority.js";

const DAY = 24 * 60 * 60 * 1000;

/** Options of {@link createTrustAnchor}. @public */
export interface TrustAnchorOptions {
  /** The trust domain, e.g. `example.org`. */
  trustDomain: string;
  /** Root lifetime in ms. Default 365 days. */
  ttlMs?: number;
  /** Root key algorithm; EC only (`ec-p256` default, or `ec-p384`). */
  keyType?: "ec-p256" | "ec-p384";
  /** Organization (O) in the root's subject. Default `"SPIFFE"`. */
  organization?: string;
  /** Clock for validity times (ms since epoch). */
  clock?: Clock;
}

/** Options of {@link TrustAnchor.createAuthority}. @public */
export interface IntermediateOptions extends Omit<CertificateAuthorityOptions, "clock"> {
  /** Intermediate lifetime in ms, capped at the root's. Default 30 days. */
  ttlMs?: number;
  /** Intermediate key algorithm; default `ec-p256`. */
  keyType?: "ec-p256" | "ec-p384";
  clock?: Clock;
}

/**
 * A trust domain's root of trust: a self-signed CA certificate and its key. It signs
 * intermediates ({@link TrustAnchor.createAuthority}); keep it offline in production and
 * publish only its certificate (the trust bundle).
 *
 * @public
 */
export class TrustAnchor {
  readonly trustDomain: string;
  readonly certificate: X509Certificate;
  readonly keyPair: KeyPair;
  readonly #clock: Clock;

  constructor(
    trustDomain: string,
    certificate: X509Certificate,
    keyPair: KeyPair,
    clock: Clock = systemClock,
  ) {
    this.trustDomain = parseTrustDomain(trustDomain);
    if (!certificate.ca)
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "trust anchor: the certificate is not a CA",
      );
    if (!certificate.checkPrivateKey(keyPair.privateKey))
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "trust anchor: the key does not match the certificate",
      );
    this.certificate = certificate;
    this.keyPair = keyPair;
    this.#clock = clock;
  }

  /** A bundle holding just this anchor. */
  get bundle(): TrustBundle {
    return new TrustBundle([this.certificate]);
  }

  /**
   * Signs a certificate for `publicKey` with this root: validity from `ttlMs` (capped at the
   * root's), subject O from the root, CN as given.
   */
  #sign(
    profile: CertificateProfile,
    commonName: string,
    publicKey: KeyObject,
    ttlMs: number,
    clock: Clock,
  ): { der: Buffer; notAfter: Date } {
    const { notBefore, notAfter } = computeValidity({
      now: clock.now(),
      ttlMs,
      skewMs: DEFAULT_CLOCK_SKEW_MS,
      issuerNotAfter: validityOf(this.certificate).notAfter,
    });
    const der = buildCertificate({
      profile,
      subject: buildName({ organization: subjectOrg(this.certificate), commonName }),
      issuer: subjectNameOf(this.certificate.raw),
      publicKey,
      authorityKeyId: keyIdentifierOf(spkiOf(this.keyPair.publicKey)),
      notBefore,
      notAfter,
      signingKey: this.keyPair.privateKey,
    });
    return { der, notAfter };
  }

  /**
   * Creates an intermediate CA signed by this root, ready to sign workload CSRs.
   */
  createAuthority(options: IntermediateOptions = {}): CertificateAuthority {
    const o = optionsObject("options", options);
    const clock = o.clock ?? this.#clock;
    const ttlMs = duration("options.ttlMs", o.ttlMs, 30 * DAY, 1, Number.MAX_SAFE_INTEGER);
    const keyPair = generateKeyPair(o.keyType ?? "ec-p256");
    const { der } = this.#sign(
      { kind: "ca", pathLength: 0 },
      `${this.trustDomain} intermediate CA`,
      keyPair.publicKey,
      ttlMs,
      clock,
    );
    const { ttlMs: _ignored, keyType: _k, ...caOptions } = o;
    return new CertificateAuthority({
      ...caOptions,
      clock,
      trustDomain: this.trustDomain,
      chain: [new X509Certificate(der)],
      keyPair,
      bundle: this.bundle,
    });
  }

  /**
   * Issues a TLS server certificate for `dnsNames` (EKU serverAuth, no SPIFFE ID) signed by
   * this root, with a new P-256 key: for control-plane servers that clients verify with the
   * trust bundle (the identity issuer, an admission webhook whose `caBundle` is this root).
   */
  issueServerCertificate(options: { dnsNames: string[]; ttlMs?: number; clock?: Clock }): {
    certificatePem: string;
    keyPem: string;
    notAfter: number;
  } {
    const o = optionsObject("options", options);
    if (!Array.isArray(o.dnsNames) || o.dnsNames.length === 0)
      throw typeError("options.dnsNames", "a non-empty list of DNS names", o.dnsNames);
    for (const [i, n] of o.dnsNames.entries())
      if (typeof n !== "string" || !/^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(n))
        throw typeError(`options.dnsNames[${i}]`, "a DNS name", n);
    const ttlMs = duration("options.ttlMs", o.ttlMs, 365 * DAY, 1, Number.MAX_SAFE_INTEGER);
    const keyPair = generateKeyPair("ec-p256");
    const { der, notAfter } = this.#sign(
      { kind: "server", dnsNames: o.dnsNames },
      o.dnsNames[0] as string,
      keyPair.publicKey,
      ttlMs,
      o.clock ?? this.#clock,
    );
    return {
      certificatePem: new X509Certificate(der).toString(),
      keyPem: exportPrivateKeyPem(keyPair),
      notAfter: notAfter.getTime(),
    };
  }

  /** PEM of the certificate and (explicitly exported) key, for writing to disk. */
  toPem(): { certificatePem: string; keyPem: string } {
    return {
      certificatePem: this.certificate.toString(),
      keyPem: exportPrivateKeyPem(this.keyPair),
    };
  }

  /** Loads a trust anchor from PEM. */
  static fromPem(
    trustDomain: string,
    certificatePem: string | Buffer,
    keyPem: string | Buffer,
  ): TrustAnchor {
    const [cert] = parseCertificatesPem(certificatePem, "trust anchor");
    return new TrustAnchor(trustDomain, cert as X509Certificate, importPrivateKeyPem(keyPem));
  }
}

function subjectOrg(cert: X509Certificate): string {
  const m = /^O=(.*)$/m.exec(cert.subject);
  return m ? (m[1] as string) : "SPIFFE";
}

/**
 * Creates a new trust anchor: an EC key generated in-process and a self-signed CA
 * certificate (CA:true, keyCertSign + cRLSign) for `trustDomain`.
 *
 * @public
 */
export function createTrustAnchor(options: TrustAnchorOptions): TrustAnchor {
  const o = optionsObject("options", options);
  const trustDomain = parseTrustDomain(o.trustDomain as string);
  const ttlMs = duration("options.ttlMs", o.ttlMs, 365 * DAY, 1, Number.MAX_SAFE_INTEGER);
  const keyType: KeyType = o.keyType ?? "ec-p256";
  if (keyType !== "ec-p256" && keyType !== "ec-p384")
    throw typeError("options.keyType", '"ec-p256" or "ec-p384"', keyType);
  const clock = o.clock ?? systemClock;
  const keyPair = generateKeyPair(keyType);
  const { notBefore, notAfter } = computeValidity({
    now: clock.now(),
    ttlMs,
    skewMs: DEFAULT_CLOCK_SKEW_MS,
  });
  const name = buildName({
    organization: o.organization ?? "SPIFFE",
    commonName: `${trustDomain} root CA`,
  });
  const der = buildCertificate({
    profile: { kind: "ca" },
    subject: name,
    issuer: name,
    publicKey: keyPair.publicKey,
    notBefore,
    notAfter,
    signingKey: keyPair.privateKey,
  });
  return new TrustAnchor(trustDomain, new X509Certificate(der), keyPair, clock);
}
