import { createPublicKey, type KeyObject } from "node:crypto";
import { Attributes, CertificationRequest, CertificationRequestInfo } from "@peculiar/asn1-csr";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import {
  Attribute,
  Extension,
  Extensions,
  GeneralName,
  id_ce_subjectAltName,
  SubjectAlternativeName,
} from "@peculiar/asn1-x509";
import { IdentityError } from "../errors.js";
import type { KeyPair, KeyType } from "../keys/keys.js";
import { keyTypeOf } from "../keys/keys.js";
import { algorithmIdentifierFor, signWith, verifyWith } from "../keys/signature.js";
import { decodePem, encodePem } from "../pem.js";
import { type SpiffeId, toSpiffeId } from "../spiffe-id/spiffe-id.js";
import { buildName, spkiOf } from "../x509/build.js";

const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";

/**
 * Creates a PKCS#10 certificate signing request for `spiffeId`, signed with the key pair:
 * a URI SAN with the ID in an extensionRequest attribute and nothing else. Returns DER;
 * use {@link csrToPem} for text.
 *
 * @public
 */
export function createCsr(keyPair: KeyPair, spiffeId: SpiffeId | string): Buffer {
  const id = toSpiffeId(spiffeId).toString();
  const san = new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: id })]);
  const extensions = new Extensions([
    new Extension({
      extnID: id_ce_subjectAltName,
      critical: false,
      extnValue: new OctetString(AsnConvert.serialize(san)),
    }),
  ]);
  const info = new CertificationRequestInfo({
    version: 0,
    subject: buildName({ organization: "SPIFFE" }),
    subjectPKInfo: spkiOf(keyPair.publicKey),
    attributes: new Attributes([
      new Attribute({ type: OID_EXTENSION_REQUEST, values: [AsnConvert.serialize(extensions)] }),
    ]),
  });
  const infoDer = new Uint8Array(AsnConvert.serialize(info));
  const sig = signWith(keyPair.privateKey, infoDer);
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: algorithmIdentifierFor(keyPair.privateKey),
    signature: sig.buffer.slice(sig.byteOffset, sig.byteOffset + sig.byteLength) as ArrayBuffer,
  });
  return Buffer.from(AsnConvert.serialize(csr));
}

/** PEM text of a DER CSR. @public */
export function csrToPem(der: Uint8Array): string {
  return encodePem("CERTIFICATE REQUEST", der);
}

/**
 * A verified CSR: its signature checked against its own public key, its SAN request
 * decoded. Produced by {@link parseCsr}.
 *
 * @public
 */
export interface ParsedCsr {
  publicKey: KeyObject;
  /** `undefined` when the key algorithm is not one this package supports. */
  keyType: KeyType | undefined;
  /** URI SANs requested, as strings (not yet validated as SPIFFE IDs). */
  uris: string[];
  /** Kinds of any non-URI SANs requested (`"dNSName"`, `"iPAddress"`, ...). */
  otherSans: string[];
}

function malformed(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "MESH_IDENTITY_CSR_MALFORMED",
    `CSR: ${message}`,
    cause ? { cause } : undefined,
  );
}

/**
 * Decodes a CSR given as PEM text or DER bytes and verifies its self-signature.
 *
 * @throws IdentityError `MESH_IDENTITY_CSR_MALFORMED` (not a CSR) or
 * `MESH_IDENTITY_CSR_SIGNATURE` (signature does not verify).
 * @public
 */
export function parseCsr(input: string | Uint8Array): ParsedCsr {
  let der: Uint8Array;
  if (typeof input === "string" || (input.length > 0 && input[0] === 0x2d) /* "-" */) {
    let blocks: ReturnType<typeof decodePem>;
    try {
      blocks = decodePem(typeof input === "string" ? input : Buffer.from(input), "CSR");
    } catch (cause) {
      throw malformed("not PEM or DER", cause);
    }
    const block = blocks.find(
      (b) => b.label === "CERTIFICATE REQUEST" || b.label === "NEW CERTIFICATE REQUEST",
    );
    if (!block) throw malformed("no CERTIFICATE REQUEST block");
    der = block.der;
  } else {
    der = input;
  }
  let csr: CertificationRequest;
  let publicKey: KeyObject;
  try {
    csr = AsnConvert.parse(der, CertificationRequest);
    const spkiDer = AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo);
    publicKey = createPublicKey({ key: Buffer.from(spkiDer), format: "der", type: "spki" });
  } catch (cause) {
    throw malformed(`does not decode (${(cause as Error).message})`, cause);
  }
  const raw = csr.certificationRequestInfoRaw;
  if (!raw) throw malformed("missing request info");
  if (
    !verifyWith(
      csr.signatureAlgorithm.algorithm,
      publicKey,
      new Uint8Array(raw),
      new Uint8Array(csr.signature),
    )
  )
    throw new IdentityError(
      "MESH_IDENTITY_CSR_SIGNATURE",
      "CSR: the signature does not verify with the CSR's public key (or uses an unsupported algorithm)",
    );
  const uris: string[] = [];
  const otherSans: string[] = [];
  try {
    for (const attr of csr.certificationRequestInfo.attributes ?? []) {
      if (attr.type !== OID_EXTENSION_REQUEST) continue;
      for (const value of attr.values) {
        for (const e of AsnConvert.parse(value, Extensions)) {
          if (e.extnID !== id_ce_subjectAltName) continue;
          const sans = AsnConvert.parse(e.extnValue.buffer, SubjectAlternativeName);
          for (const gn of sans) {
            if (gn.uniformResourceIdentifier !== undefined) uris.push(gn.uniformResourceIdentifier);
            else
              otherSans.push(
                Object.keys(gn).find(
                  (k) => (gn as unknown as Record<string, unknown>)[k] !== undefined,
                ) ?? "unknown",
              );
          }
        }
      }
    }
  } catch (cause) {
    throw malformed(`extension request does not decode (${(cause as Error).message})`, cause);
  }
  return { publicKey, keyType: keyTypeOf(publicKey), uris, otherSans };
}
