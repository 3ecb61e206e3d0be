import { createHash, type KeyObject, randomBytes } from "node:crypto";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import {
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Time,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import { algorithmIdentifierFor, signWith } from "../keys/signature.js";

const OID_ORGANIZATION = "2.5.4.10";
const OID_COMMON_NAME = "2.5.4.3";

/** A distinguished name as ordered attribute pairs (only O and CN are used here). */
export interface SimpleName {
  organization?: string;
  commonName?: string;
}

/** Builds an X.501 Name; empty input gives the empty sequence. */
export function buildName(name: SimpleName): Name {
  const rdns: RelativeDistinguishedName[] = [];
  const add = (type: string, value: string) =>
    rdns.push(
      new RelativeDistinguishedName([
        new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) }),
      ]),
    );
  if (name.organization) add(OID_ORGANIZATION, name.organization);
  if (name.commonName) add(OID_COMMON_NAME, name.commonName);
  return new Name(rdns);
}

/** The SubjectPublicKeyInfo structure of a public key. */
export function spkiOf(publicKey: KeyObject): SubjectPublicKeyInfo {
  return AsnConvert.parse(publicKey.export({ type: "spki", format: "der" }), SubjectPublicKeyInfo);
}

/** RFC 5280 method 1 key identifier: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifierOf(spki: SubjectPublicKeyInfo): ArrayBuffer {
  const h = createHash("sha1").update(new Uint8Array(spki.subjectPublicKey)).digest();
  return h.buffer.slice(h.byteOffset, h.byteOffset + h.byteLength) as ArrayBuffer;
}

/** A fresh positive 128-bit serial number (RFC 5280 allows up to 20 octets). */
export function randomSerial(): ArrayBuffer {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x01;
  return b.buffer.slice(b.byteOffset, b.byteOffset + 16) as ArrayBuffer;
}

function ext(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({
    extnID,
    critical,
    extnValue: new OctetString(AsnConvert.serialize(value)),
  });
}

/** What kind of certificate to build; decides the extension profile. */
export type CertificateProfile =
  | { kind: "leaf"; spiffeId: string; keyAgreement?: boolean }
  | { kind: "ca"; pathLength?: number; spiffeId?: string }
  // A plain TLS server certificate (DNS names), for control-plane endpoints that
  // Kubernetes or proxies reach by Service name: the issuer, the injector webhook.
  | { kind: "server"; dnsNames: string[] };

/** Everything needed to build and sign one certificate. */
export interface CertificateTemplate {
  profile: CertificateProfile;
  subject: Name;
  issuer: Name;
  publicKey: KeyObject;
  /** Key identifier of the issuer's key; omitted for self-signed roots. */
  authorityKeyId?: ArrayBuffer;
  notBefore: Date;
  notAfter: Date;
  signingKey: KeyObject;
  serialNumber?: ArrayBuffer;
}

/**
 * Builds and signs an X.509 v3 certificate with the X.509-SVID extension profile:
 * leaves get exactly one URI SAN, CA:false, digitalSignature (+keyAgreement on request)
 * and EKU serverAuth+clientAuth; CAs get CA:true and keyCertSign+cRLSign. Returns DER.
 */
export function buildCertificate(t: CertificateTemplate): Buffer {
  const spki = spkiOf(t.publicKey);
  const subjectKeyId = keyIdentifierOf(spki);
  const extensions: Extension[] = [];
  const p = t.profile;
  if (p.kind === "leaf") {
    extensions.push(ext(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })));
    let usage = KeyUsageFlags.digitalSignature;
    if (p.keyAgreement) usage |= KeyUsageFlags.keyAgreement;
    extensions.push(ext(id_ce_keyUsage, true, new KeyUsage(usage)));
    extensions.push(
      ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth, id_kp_clientAuth])),
    );
  } else if (p.kind === "server") {
    extensions.push(ext(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })));
    extensions.push(ext(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature)));
    extensions.push(ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth])));
    extensions.push(
      ext(
        id_ce_subjectAltName,
        t.subject.length === 0,
        new SubjectAlternativeName(p.dnsNames.map((dNSName) => new GeneralName({ dNSName }))),
      ),
    );
  } else {
    extensions.push(
      ext(
        id_ce_basicConstraints,
        true,
        new BasicConstraints(
          p.pathLength === undefined ? { cA: true } : { cA: true, pathLenConstraint: p.pathLength },
        ),
      ),
    );
    extensions.push(
      ext(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)),
    );
  }
  const uri = p.kind === "server" ? undefined : p.spiffeId;
  if (uri !== undefined) {
    // RFC 5280: the SAN extension is critical when the subject is empty.
    const critical = t.subject.length === 0;
    extensions.push(
      ext(
        id_ce_subjectAltName,
        critical,
        new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: uri })]),
      ),
    );
  }
  extensions.push(ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(subjectKeyId)));
  if (t.authorityKeyId)
    extensions.push(
      ext(
        id_ce_authorityKeyIdentifier,
        false,
        new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(t.authorityKeyId) }),
      ),
    );

  const signature = algorithmIdentifierFor(t.signingKey);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: t.serialNumber ?? randomSerial(),
    signature,
    issuer: t.issuer,
    validity: new Validity({ notBefore: t.notBefore, notAfter: t.notAfter }),
    subject: t.subject,
    subjectPublicKeyInfo: spki,
    extensions: new Extensions(extensions),
  });
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const sig = signWith(t.signingKey, tbsDer);
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: signature,
    signatureValue: sig.buffer.slice(
      sig.byteOffset,
      sig.byteOffset + sig.byteLength,
    ) as ArrayBuffer,
  });
  return Buffer.from(AsnConvert.serialize(cert));
}

/** The subject Name of a DER certificate, for use as the issuer of certificates it signs. */
export function subjectNameOf(certDer: Uint8Array): Name {
  return AsnConvert.parse(certDer, Certificate).tbsCertificate.subject;
}

export { Time };
