import { IdentityError } from "./errors.js";

/** One decoded PEM block. */
export interface PemBlock {
  label: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * Decodes every PEM block in `text`, in order.
 *
 * @throws IdentityError `MESH_IDENTITY_INVALID_PEM` when there is none.
 */
export function decodePem(text: string | Buffer, what = "PEM input"): PemBlock[] {
  const s = typeof text === "string" ? text : text.toString("latin1");
  const out: PemBlock[] = [];
  for (const m of s.matchAll(BLOCK)) {
    const body = (m[2] as string).replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body))
      throw new IdentityError(
        "MESH_IDENTITY_INVALID_PEM",
        `${what}: a ${m[1]} block is not base64`,
      );
    out.push({ label: m[1] as string, der: Buffer.from(body, "base64") });
  }
  if (out.length === 0)
    throw new IdentityError("MESH_IDENTITY_INVALID_PEM", `${what}: no PEM block found`);
  return out;
}

/** Encodes DER as a PEM block with 64-column lines. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  let body = "";
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}
