import { readFile } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { TrustBundle } from "../bundle/trust-bundle.js";
import { createCsr } from "../csr/csr.js";
import { IdentityError } from "../errors.js";
import { generateKeyPair, type KeyType } from "../keys/keys.js";
import { type SpiffeId, toSpiffeId } from "../spiffe-id/spiffe-id.js";
import { parseCertificatesPem } from "../x509/certificate.js";
import { X509Svid } from "../x509/svid.js";
import { ISSUE_PATH, type IssueResponse } from "./service.js";

/** How to reach and authenticate to an issuer. @public */
export interface IssuerClientOptions {
  /** Base URL of the issuer, e.g. `https://identity.mesh:8443`. */
  url: string;
  /** The identity to request; the issuer must authenticate the token as this ID. */
  spiffeId: SpiffeId | string;
  /** The bearer token, or a function returning it (read per request). */
  token?: string | (() => string | Promise<string>);
  /** A file holding the bearer token, re-read per request (rotating projected tokens). */
  tokenFile?: string;
  /**
   * CA PEM that verifies an HTTPS issuer's certificate, or a function returning it, called
   * for each request so a rotated CA file (e.g. `() => readFile("bundle.pem")`) applies to
   * the next CSR without a restart.
   */
  ca?: string | Buffer | (() => string | Buffer | Promise<string | Buffer>);
  /** Key algorithm for the new key. Default `ec-p256`. */
  keyType?: KeyType;
  /** Request timeout, ms. Default 10 000. */
  timeoutMs?: number;
}

async function tokenOf(o: IssuerClientOptions): Promise<string> {
  if (o.tokenFile !== undefined) return (await readFile(o.tokenFile, "utf8")).trim();
  if (typeof o.token === "function") return await o.token();
  if (typeof o.token === "string") return o.token;
  throw new TypeError(
    "options.token: expected a token string, function or tokenFile, got undefined",
  );
}

async function caOf(o: IssuerClientOptions): Promise<string | Buffer | undefined> {
  const ca = typeof o.ca === "function" ? await o.ca() : o.ca;
  if (ca !== undefined && typeof ca !== "string" && !Buffer.isBuffer(ca))
    throw new TypeError(
      `options.ca: expected a PEM string or Buffer (or a function returning one), got ${typeof ca}`,
    );
  return ca;
}

/** @internal One POST over node:http(s) (fresh connection), the whole answer as text. */
export function post(
  url: URL,
  body: Buffer,
  headers: Record<string, string>,
  ca: string | Buffer | undefined,
  timeoutMs: number,
) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(
      url,
      {
        method: "POST",
        headers: { ...headers, "content-length": String(body.length) },
        ...(url.protocol === "https:" && ca ? { ca } : {}),
        timeout: timeoutMs,
        agent: false,
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * The CSR flow from the workload side: generate a fresh key in-process, send a CSR for
 * `spiffeId` with the bearer token, and return the SVID (chain + the key, which never
 * left this process) and the trust bundle.
 *
 * @throws IdentityError `MESH_IDENTITY_ISSUER_UNAVAILABLE` when the issuer cannot be
 * reached or answers 5xx, `MESH_IDENTITY_ISSUER_REJECTED` (with `status`) on 4xx.
 * @public
 */
export async function requestSvid(
  options: IssuerClientOptions,
): Promise<{ svid: X509Svid; bundle: TrustBundle }> {
  const id = toSpiffeId(options.spiffeId);
  const keyPair = generateKeyPair(options.keyType ?? "ec-p256");
  const csr = createCsr(keyPair, id);
  const url = new URL(ISSUE_PATH, options.url);
  const token = await tokenOf(options);
  // Resolved per request: a rotated CA applies to the next CSR.
  const ca = url.protocol === "https:" ? await caOf(options) : undefined;
  let res: { status: number; text: string };
  try {
    res = await post(
      url,
      csr,
      {
        authorization: `Bearer ${token}`,
        "content-type": "application/pkcs10",
        accept: "application/json",
      },
      ca,
      options.timeoutMs ?? 10_000,
    );
  } catch (cause) {
    throw new IdentityError(
      "MESH_IDENTITY_ISSUER_UNAVAILABLE",
      `issuer ${url.origin}: ${(cause as Error).message}`,
      { cause },
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    body = undefined;
  }
  if (res.status !== 200) {
    const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    const detail = e ? `${e.code}: ${e.message}` : res.text.slice(0, 200);
    const code =
      res.status >= 500 ? "MESH_IDENTITY_ISSUER_UNAVAILABLE" : "MESH_IDENTITY_ISSUER_REJECTED";
    throw Object.assign(
      new IdentityError(code, `issuer ${url.origin} answered ${res.status}: ${detail}`),
      { status: res.status },
    );
  }
  const ok = body as Partial<IssueResponse> | undefined;
  if (!ok || typeof ok.chainPem !== "string" || typeof ok.bundlePem !== "string")
    throw new IdentityError(
      "MESH_IDENTITY_ISSUER_UNAVAILABLE",
      `issuer ${url.origin} sent an unexpected body`,
    );
  const svid = new X509Svid(parseCertificatesPem(ok.chainPem, "issued chain"), keyPair.privateKey);
  if (!svid.spiffeId.equals(id))
    throw new IdentityError(
      "MESH_IDENTITY_ISSUER_REJECTED",
      `issuer ${url.origin} issued ${svid.spiffeId}, not ${id}`,
    );
  return { svid, bundle: TrustBundle.fromPem(ok.bundlePem) };
}
