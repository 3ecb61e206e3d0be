import { X509Certificate } from "node:crypto";
import { IdentityError } from "../errors.js";
import { decodePem } from "../pem.js";
import { parseSpiffeId, type SpiffeId } from "../spiffe-id/spiffe-id.js";

/**
 * Splits node's `subjectAltName` text (`URI:a, DNS:b`) into entries. Node JSON-quotes
 * values that contain separators (CVE-2021-44532), so a quoted value is decoded rather
 * than split.
 */
export function splitSubjectAltName(text: string | undefined): string[] {
  if (!text) return [];
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon === -1) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // JSON string literal: find its closing quote, honouring escapes.
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 1, j + 1);
      }
      next = j + 1;
    } else {
      const comma = text.indexOf(", ", colon);
      next = comma === -1 ? text.length : comma;
      value = text.slice(colon + 1, next);
    }
    out.push(`${kind}:${value}`);
    i = next + 2;
  }
  return out;
}

/** All URI SANs of a certificate. */
export function uriSansOf(cert: {
  subjectAltName?: string | undefined;
  subjectaltname?: string;
}): string[] {
  const text = "subjectAltName" in cert ? cert.subjectAltName : cert.subjectaltname;
  const uris: string[] = [];
  for (const e of splitSubjectAltName(text)) if (e.startsWith("URI:")) uris.push(e.slice(4));
  return uris;
}

/**
 * The SPIFFE ID of an X.509-SVID: its one URI SAN, validated.
 *
 * @throws IdentityError `MESH_IDENTITY_INVALID_CERTIFICATE` when the certificate has no
 * URI SAN or more than one, or {@link SpiffeIdError} when the URI is not a SPIFFE ID.
 * @public
 */
export function spiffeIdOf(cert: X509Certificate): SpiffeId {
  const uris = uriSansOf(cert);
  if (uris.length !== 1)
    throw new IdentityError(
      "MESH_IDENTITY_INVALID_CERTIFICATE",
      `an X.509-SVID has exactly one URI SAN; this certificate has ${uris.length}`,
    );
  return parseSpiffeId(uris[0] as string);
}

/**
 * Parses every CERTIFICATE block of a PEM text into node `X509Certificate`s, in order.
 *
 * @throws IdentityError `MESH_IDENTITY_INVALID_PEM` / `MESH_IDENTITY_INVALID_CERTIFICATE`.
 * @public
 */
export function parseCertificatesPem(
  pem: string | Buffer,
  what = "certificates",
): X509Certificate[] {
  const blocks = decodePem(pem, what).filter((b) => b.label === "CERTIFICATE");
  if (blocks.length === 0)
    throw new IdentityError("MESH_IDENTITY_INVALID_PEM", `${what}: no CERTIFICATE block found`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b.der);
    } catch (cause) {
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_CERTIFICATE",
        `${what}: certificate #${i + 1} does not parse (${(cause as Error).message})`,
        { cause },
      );
    }
  });
}

/** Concatenated PEM of certificates. */
export function certificatesToPem(certs: readonly X509Certificate[]): string {
  let out = "";
  for (const c of certs) out += c.toString();
  return out;
}

/** notBefore/notAfter of a certificate in ms since the epoch. */
export function validityOf(cert: X509Certificate): { notBefore: number; notAfter: number } {
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}
