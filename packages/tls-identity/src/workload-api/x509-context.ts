import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { TrustBundle } from "../bundle/trust-bundle.js";
import { IdentityError } from "../errors.js";
import type { IdentitySnapshot } from "../source/svid-source.js";
import { X509Svid } from "../x509/svid.js";
import type { X509BundlesResponseMessage, X509SvidResponseMessage } from "./protobuf.js";

function invalid(field: string, detail: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "MESH_IDENTITY_WORKLOAD_API_INVALID",
    `${field}: ${detail}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Splits concatenated ASN.1 DER values (the Workload API's encoding of certificate lists)
 * at their outer SEQUENCE lengths.
 */
export function splitDer(buf: Buffer, field: string): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] !== 0x30)
      throw invalid(field, `expected a DER SEQUENCE at byte ${pos}, got tag 0x${hex(buf[pos])}`);
    if (pos + 2 > buf.length) throw invalid(field, `truncated DER length at byte ${pos}`);
    let len = buf[pos + 1] as number;
    let header = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) throw invalid(field, `unsupported DER length form at byte ${pos}`);
      if (pos + 2 + n > buf.length) throw invalid(field, `truncated DER length at byte ${pos}`);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + 2 + i] as number);
      header += n;
    }
    const end = pos + header + len;
    if (end > buf.length)
      throw invalid(
        field,
        `a DER value of ${len} bytes at byte ${pos} runs past the end (${buf.length} bytes)`,
      );
    out.push(buf.subarray(pos, end));
    pos = end;
  }
  return out;
}

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).padStart(2, "0");
}

function certificates(buf: Buffer, field: string): X509Certificate[] {
  if (buf.length === 0) throw invalid(field, "expected DER certificates, got none");
  return splitDer(buf, field).map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (cause) {
      throw invalid(
        field,
        `certificate #${i + 1} does not parse (${(cause as Error).message})`,
        cause,
      );
    }
  });
}

/** Parses a DER trust bundle field into a {@link TrustBundle}, naming the field on failure. */
export function bundleFromDer(buf: Buffer, field: string): TrustBundle {
  const certs = certificates(buf, field);
  try {
    return new TrustBundle(certs);
  } catch (cause) {
    throw invalid(field, (cause as Error).message, cause);
  }
}

/** What {@link snapshotFromResponse} takes from a response. */
export interface WorkloadApiX509Context extends IdentitySnapshot {
  /** Bundles of other trust domains the agent federates with, by trust domain name. */
  readonly federatedBundles: ReadonlyMap<string, TrustBundle>;
}

/**
 * Validates an `X509SVIDResponse` with the package's X.509-SVID checks and turns it into a
 * snapshot: the SVID whose `spiffe_id` is `want` (or the first, the agent's default), its
 * trust bundle, and the federated bundles.
 *
 * @throws IdentityError `MESH_IDENTITY_WORKLOAD_API_INVALID` whose message starts with the
 *   field at fault (`X509SVIDResponse.svids[0].x509_svid_key: ...`).
 */
export function snapshotFromResponse(
  res: X509SvidResponseMessage,
  want?: string,
): WorkloadApiX509Context {
  if (res.svids.length === 0)
    throw invalid("X509SVIDResponse.svids", "expected at least one SVID, got none");
  let index = 0;
  if (want !== undefined) {
    index = res.svids.findIndex((s) => s.spiffeId === want);
    if (index === -1)
      throw invalid(
        "X509SVIDResponse.svids",
        `expected an SVID for ${want}, got ${res.svids.map((s) => s.spiffeId || '""').join(", ")}`,
      );
  }
  const m = res.svids[index] as X509SvidResponseMessage["svids"][number];
  const at = `X509SVIDResponse.svids[${index}]`;
  const chain = certificates(m.x509Svid, `${at}.x509_svid`);
  if (m.x509SvidKey.length === 0)
    throw invalid(`${at}.x509_svid_key`, "expected a PKCS#8 DER private key, got none");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: m.x509SvidKey, format: "der", type: "pkcs8" });
  } catch (cause) {
    throw invalid(
      `${at}.x509_svid_key`,
      `expected a PKCS#8 DER private key (${(cause as Error).message})`,
      cause,
    );
  }
  let svid: X509Svid;
  try {
    svid = new X509Svid(chain, key);
  } catch (cause) {
    throw invalid(`${at}.x509_svid`, (cause as Error).message, cause);
  }
  if (svid.spiffeId.toString() !== m.spiffeId)
    throw invalid(
      `${at}.spiffe_id`,
      `expected the certificate's SPIFFE ID ${svid.spiffeId}, got ${JSON.stringify(m.spiffeId)}`,
    );
  const bundle = bundleFromDer(m.bundle, `${at}.bundle`);
  const federatedBundles = new Map<string, TrustBundle>();
  for (const [td, der] of res.federatedBundles)
    federatedBundles.set(td, bundleFromDer(der, `X509SVIDResponse.federated_bundles[${td}]`));
  return { svid, bundle, federatedBundles };
}

/**
 * Validates an `X509BundlesResponse`: at least one bundle, each of CA certificates.
 *
 * @throws IdentityError `MESH_IDENTITY_WORKLOAD_API_INVALID` naming the field at fault
 *   (`X509BundlesResponse.bundles[example.org]: ...`).
 */
export function bundlesFromResponse(res: X509BundlesResponseMessage): Map<string, TrustBundle> {
  if (res.bundles.size === 0)
    throw invalid("X509BundlesResponse.bundles", "expected at least one bundle, got none");
  const out = new Map<string, TrustBundle>();
  for (const [td, der] of res.bundles)
    out.set(td, bundleFromDer(der, `X509BundlesResponse.bundles[${td}]`));
  return out;
}
