import { type KeyObject, sign, verify } from "node:crypto";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { keyTypeOf } from "./keys.js";

const ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const ECDSA_SHA384 = "1.2.840.10045.4.3.3";
const RSA_SHA256 = "1.2.840.113549.1.1.11";
const RSA_SHA384 = "1.2.840.113549.1.1.12";
const RSA_SHA512 = "1.2.840.113549.1.1.13";
const ECDSA_SHA512 = "1.2.840.10045.4.3.4";

const DIGEST_BY_OID: Record<string, string> = {
  [ECDSA_SHA256]: "sha256",
  [ECDSA_SHA384]: "sha384",
  [ECDSA_SHA512]: "sha512",
  [RSA_SHA256]: "sha256",
  [RSA_SHA384]: "sha384",
  [RSA_SHA512]: "sha512",
};

/** ASN.1 NULL, the parameters of the PKCS#1 signature algorithms. */
const NULL = new Uint8Array([5, 0]).buffer;

/** The signature algorithm this package uses for a signing key. */
export function signatureAlgorithmFor(key: KeyObject): { oid: string; digest: string } {
  const type = keyTypeOf(key);
  if (type === "ec-p384") return { oid: ECDSA_SHA384, digest: "sha384" };
  if (type === "ec-p256") return { oid: ECDSA_SHA256, digest: "sha256" };
  return { oid: RSA_SHA256, digest: "sha256" };
}

/** The AlgorithmIdentifier for a signing key (RSA carries NULL parameters, ECDSA none). */
export function algorithmIdentifierFor(key: KeyObject): AlgorithmIdentifier {
  const { oid } = signatureAlgorithmFor(key);
  return new AlgorithmIdentifier(
    oid === RSA_SHA256 ? { algorithm: oid, parameters: NULL } : { algorithm: oid },
  );
}

/** Signs `data` with `key`, DER-encoded ECDSA signatures as X.509 wants them. */
export function signWith(key: KeyObject, data: Uint8Array): Buffer {
  return sign(signatureAlgorithmFor(key).digest, data, key);
}

/** Verifies a signature made with the algorithm `oid`; false for unknown algorithms. */
export function verifyWith(
  oid: string,
  key: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  const digest = DIGEST_BY_OID[oid];
  if (digest === undefined) return false;
  try {
    return verify(digest, data, key, signature);
  } catch {
    return false;
  }
}
