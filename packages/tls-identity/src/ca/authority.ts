import { type KeyObject, X509Certificate } from "node:crypto";
import { type Clock, duration, optionsObject, typeError } from "@mesh/core";
import { TrustBundle } from "../bundle/trust-bundle.js";
import { systemClock } from "../clock.js";
import { parseCsr } from "../csr/csr.js";
import { IdentityError } from "../errors.js";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  type KeyPair,
  type KeyType,
} from "../keys/keys.js";
import {
  parseSpiffeId,
  parseTrustDomain,
  type SpiffeId,
  toSpiffeId,
} from "../spiffe-id/spiffe-id.js";
import {
  buildCertificate,
  buildName,
  keyIdentifierOf,
  spkiOf,
  subjectNameOf,
} from "../x509/build.js";
import { certificatesToPem, parseCertificatesPem, validityOf } from "../x509/certificate.js";
import { X509Svid } from "../x509/svid.js";
import { computeValidity, DEFAULT_CLOCK_SKEW_MS, DEFAULT_SVID_TTL_MS } from "../x509/validity.js";

const KEY_TYPES: readonly KeyType[] = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"];

/** Policy options of a {@link CertificateAuthority}. @public */
export interface CertificateAuthorityOptions {
  /** Default SVID lifetime in ms. Default 24 h. */
  svidTtlMs?: number;
  /** Longest SVID lifetime a caller may ask for. Default 7 days. */
  maxSvidTtlMs?: number;
  /** How far notBefore is backdated for clock skew. Default 20 000 ms. */
  clockSkewMs?: number;
  /** Key types accepted in CSRs. Default `["ec-p256", "ec-p384"]`. */
  allowedKeyTypes?: readonly KeyType[];
  /** Add keyAgreement to leaf key usage. Default false (digitalSignature only). */
  keyAgreement?: boolean;
  /** Clock for validity times (ms since epoch). */
  clock?: Clock;
}

/** Constructor input of a {@link CertificateAuthority}. @public */
export interface CertificateAuthorityInit extends CertificateAuthorityOptions {
  trustDomain: string;
  /** The signing certificate first, then any intermediates above it (no root). */
  chain: readonly X509Certificate[];
  keyPair: KeyPair;
  /** The trust anchors issued chains verify against. */
  bundle: TrustBundle;
}

/** Per-call options of {@link CertificateAuthority.signCsr}. @public */
export interface SignOptions {
  /** The identity the caller authenticated the requester as. Required. */
  spiffeId: SpiffeId | string;
  /** Lifetime in ms (capped at `maxSvidTtlMs` and at the CA chain's expiry). */
  ttlMs?: number;
}

/**
 * The result of signing: the new leaf plus the CA chain above it, and the bundle to
 * verify peers with. No private key: it never left the requester.
 *
 * @public
 */
export interface IssuedCertificate {
  spiffeId: SpiffeId;
  /** Leaf first, then the CA's chain (no root). */
  chain: X509Certificate[];
  chainPem: string;
  bundle: TrustBundle;
  notBefore: number;
  notAfter: number;
  serialNumber: string;
}

/**
 * An issuing CA (normally an intermediate under a {@link TrustAnchor}) that signs
 * X.509-SVIDs. {@link CertificateAuthority.signCsr} enforces the SPIFFE rules a CA owes
 * its relying parties: the CSR's signature verifies, its key type is allowed, it asks for
 * exactly one URI SAN equal to the authenticated identity in this trust domain, and for
 * no other SAN. Extensions the CSR asks for besides the SAN are ignored; the CA writes the
 * SVID profile itself.
 *
 * @public
 */
export class CertificateAuthority {
  readonly trustDomain: string;
  readonly chain: readonly X509Certificate[];
  readonly bundle: TrustBundle;
  readonly #key: KeyPair;
  readonly #issuerName;
  readonly #authorityKeyId: ArrayBuffer;
  readonly #chainNotAfter: number;
  readonly #ttl: number;
  readonly #maxTtl: number;
  readonly #skew: number;
  readonly #allowed: ReadonlySet<KeyType>;
  readonly #keyAgreement: boolean;
  readonly #clock: Clock;

  constructor(init: CertificateAuthorityInit) {
    const o = optionsObject("init", init);
    this.trustDomain = parseTrustDomain(o.trustDomain as string);
    const chain = o.chain;
    if (!Array.isArray(chain) || chain.length === 0 || !(chain[0] instanceof X509Certificate))
      throw typeError("init.chain", "a non-empty array of X509Certificate", chain);
    const signer = chain[0] as X509Certificate;
    if (!signer.ca)
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "CA: the signing certificate is not a CA",
      );
    if (!o.keyPair || !signer.checkPrivateKey(o.keyPair.privateKey))
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        "CA: the key does not match the signing certificate",
      );
    if (!(o.bundle instanceof TrustBundle))
      throw typeError("init.bundle", "a TrustBundle", o.bundle);
    this.chain = Object.freeze([...chain]);
    this.bundle = o.bundle;
    this.#key = o.keyPair;
    this.#issuerName = subjectNameOf(signer.raw);
    this.#authorityKeyId = keyIdentifierOf(spkiOf(o.keyPair.publicKey));
    // Never issue past any certificate above the leaf, including the anchors that sign the chain.
    let cap = Math.min(...chain.map((c) => validityOf(c).notAfter));
    const top = chain[chain.length - 1] as X509Certificate;
    for (const anchor of o.bundle.certificates)
      if (top.checkIssued(anchor)) cap = Math.min(cap, validityOf(anchor).notAfter);
    this.#chainNotAfter = cap;
    this.#maxTtl = duration(
      "init.maxSvidTtlMs",
      o.maxSvidTtlMs,
      7 * 24 * 60 * 60 * 1000,
      1,
      Number.MAX_SAFE_INTEGER,
    );
    this.#ttl = Math.min(
      duration("init.svidTtlMs", o.svidTtlMs, DEFAULT_SVID_TTL_MS, 1, Number.MAX_SAFE_INTEGER),
      this.#maxTtl,
    );
    this.#skew = duration(
      "init.clockSkewMs",
      o.clockSkewMs,
      DEFAULT_CLOCK_SKEW_MS,
      0,
      Number.MAX_SAFE_INTEGER,
    );
    const allowed = o.allowedKeyTypes ?? ["ec-p256", "ec-p384"];
    if (!Array.isArray(allowed) || allowed.some((k) => !KEY_TYPES.includes(k)))
      throw typeError(
        "init.allowedKeyTypes",
        `an array of ${KEY_TYPES.map((k) => `"${k}"`).join(", ")}`,
        allowed,
      );
    this.#allowed = new Set(allowed);
    this.#keyAgreement = o.keyAgreement === true;
    this.#clock = o.clock ?? systemClock;
  }

  /** The signing certificate. */
  get certificate(): X509Certificate {
    return this.chain[0] as X509Certificate;
  }

  /** When the CA chain expires (ms since epoch); no SVID outlives it. */
  get notAfter(): number {
    return this.#chainNotAfter;
  }

  /**
   * Verifies a CSR (PEM or DER) and signs an X.509-SVID for the authenticated identity.
   *
   * @throws IdentityError with code `MESH_IDENTITY_CSR_MALFORMED`,
   * `MESH_IDENTITY_CSR_SIGNATURE`, `MESH_IDENTITY_KEY_TYPE_NOT_ALLOWED`,
   * `MESH_IDENTITY_ID_MISMATCH`, `MESH_IDENTITY_EXTRA_SAN` or `MESH_IDENTITY_CA_EXPIRED`.
   */
  signCsr(csr: string | Uint8Array, options: SignOptions): IssuedCertificate {
    const authenticated = this.#checkIdentity(options?.spiffeId);
    const parsed = parseCsr(csr);
    if (parsed.keyType === undefined || !this.#allowed.has(parsed.keyType))
      throw new IdentityError(
        "MESH_IDENTITY_KEY_TYPE_NOT_ALLOWED",
        `CSR: key type ${parsed.keyType ?? describeKey(parsed.publicKey)} is not allowed (allowed: ${[...this.#allowed].join(", ")})`,
      );
    if (parsed.otherSans.length > 0)
      throw new IdentityError(
        "MESH_IDENTITY_EXTRA_SAN",
        `CSR: an X.509-SVID carries only its SPIFFE ID, but the CSR also asks for ${parsed.otherSans.join(", ")}`,
      );
    if (parsed.uris.length !== 1)
      throw new IdentityError(
        parsed.uris.length === 0 ? "MESH_IDENTITY_ID_MISMATCH" : "MESH_IDENTITY_EXTRA_SAN",
        `CSR: expected exactly one URI SAN (${authenticated}), got ${parsed.uris.length}`,
      );
    const requested = parsed.uris[0] as string;
    if (requested !== authenticated.toString())
      throw new IdentityError(
        "MESH_IDENTITY_ID_MISMATCH",
        `CSR: asks for ${JSON.stringify(requested)} but the requester is authenticated as ${authenticated}`,
      );
    return this.signPublicKey(parsed.publicKey, authenticated, options.ttlMs);
  }

  /**
   * Signs an SVID for a public key directly (no CSR). The caller vouches for the identity.
   */
  signPublicKey(
    publicKey: KeyObject,
    spiffeId: SpiffeId | string,
    ttlMs?: number,
  ): IssuedCertificate {
    const id = this.#checkIdentity(spiffeId);
    const ttl = Math.min(
      duration("ttlMs", ttlMs, this.#ttl, 1, Number.MAX_SAFE_INTEGER),
      this.#maxTtl,
    );
    const { notBefore, notAfter } = computeValidity({
      now: this.#clock.now(),
      ttlMs: ttl,
      skewMs: this.#skew,
      issuerNotAfter: this.#chainNotAfter,
    });
    const der = buildCertificate({
      profile: { kind: "leaf", spiffeId: id.toString(), keyAgreement: this.#keyAgreement },
      subject: buildName({ organization: "SPIFFE" }),
      issuer: this.#issuerName,
      publicKey,
      authorityKeyId: this.#authorityKeyId,
      notBefore,
      notAfter,
      signingKey: this.#key.privateKey,
    });
    const leaf = new X509Certificate(der);
    const chain = [leaf, ...this.chain];
    return {
      spiffeId: id,
      chain,
      chainPem: certificatesToPem(chain),
      bundle: this.bundle,
      notBefore: notBefore.getTime(),
      notAfter: notAfter.getTime(),
      serialNumber: leaf.serialNumber,
    };
  }

  /**
   * Generates a key pair here and issues an SVID for it: for tools and tests. Workloads
   * should generate their own key and send a CSR so the key never travels.
   */
  issue(
    spiffeId: SpiffeId | string,
    options: { ttlMs?: number; keyType?: KeyType } = {},
  ): X509Svid {
    const keyPair = generateKeyPair(options.keyType ?? "ec-p256");
    const issued = this.signPublicKey(keyPair.publicKey, spiffeId, options.ttlMs);
    return new X509Svid(issued.chain, keyPair.privateKey);
  }

  /** PEM of the chain, the (explicitly exported) key and the bundle, for writing to disk. */
  toPem(): { chainPem: string; keyPem: string; bundlePem: string } {
    return {
      chainPem: certificatesToPem(this.chain),
      keyPem: exportPrivateKeyPem(this.#key),
      bundlePem: this.bundle.pem,
    };
  }

  /** Loads a CA from PEM: the signing chain (signer first), its key and the trust bundle. */
  static fromPem(
    init: {
      trustDomain: string;
      chainPem: string | Buffer;
      keyPem: string | Buffer;
      bundlePem: string | Buffer;
    } & CertificateAuthorityOptions,
  ): CertificateAuthority {
    const { chainPem, keyPem, bundlePem, ...rest } = init;
    return new CertificateAuthority({
      ...rest,
      chain: parseCertificatesPem(chainPem, "CA chain"),
      keyPair: importPrivateKeyPem(keyPem),
      bundle: TrustBundle.fromPem(bundlePem),
    });
  }

  #checkIdentity(spiffeId: SpiffeId | string | undefined): SpiffeId {
    if (spiffeId === undefined)
      throw typeError("options.spiffeId", "the authenticated SPIFFE ID", spiffeId);
    const id = typeof spiffeId === "string" ? parseSpiffeId(spiffeId) : toSpiffeId(spiffeId);
    if (id.trustDomain !== this.trustDomain)
      throw new IdentityError(
        "MESH_IDENTITY_ID_MISMATCH",
        `${id} is not in this CA's trust domain ${JSON.stringify(this.trustDomain)}`,
      );
    if (id.path === "")
      throw new IdentityError(
        "MESH_IDENTITY_ID_MISMATCH",
        `${id} has no path; a workload SVID needs one`,
      );
    return id;
  }
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  return `${key.asymmetricKeyType}${d?.namedCurve ? ` ${d.namedCurve}` : ""}${d?.modulusLength ? ` ${d.modulusLength}` : ""}`;
}
