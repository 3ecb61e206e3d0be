import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from "node:https";
import type { AddressInfo } from "node:net";
import { duration, integerIn, typeError } from "@mesh/core";
import type { CertificateAuthority } from "../ca/authority.js";
import { IdentityError } from "../errors.js";
import { publishIssued } from "../events.js";
import type { Authenticator } from "./authenticator.js";

/** The JSON body of a successful issuance. @public */
export interface IssueResponse {
  spiffeId: string;
  /** Leaf first, then intermediates, as PEM. */
  chainPem: string;
  /** Trust anchors as PEM. */
  bundlePem: string;
  notBefore: number;
  notAfter: number;
  serialNumber: string;
}

/** The JSON body of every error response. @public */
export interface IssuerErrorBody {
  error: { code: string; message: string };
}

/** Options of {@link createIssuer}. @public */
export interface IssuerOptions {
  ca: CertificateAuthority;
  authenticator: Authenticator;
  /** Serve HTTPS with these options (cert/key); plain HTTP when omitted. */
  tls?: HttpsOptions;
  /** Largest accepted request body in bytes. Default 16 KiB (a P-256 CSR is ~400 B). */
  maxBodyBytes?: number;
  /** SVID lifetime to issue, ms; default the CA's. */
  svidTtlMs?: number;
}

/** A running (or ready to run) issuer service. @public */
export interface Issuer {
  /** The underlying node:http(s) server. */
  readonly server: Server;
  /** Starts listening; resolves with the base URL, e.g. `http://127.0.0.1:40123`. */
  listen(port?: number, host?: string): Promise<string>;
  /** The base URL once listening. */
  readonly url: string;
  /** Stops accepting and closes open connections. */
  close(): Promise<void>;
}

/** Path of the issuance endpoint: POST a CSR here. */
export const ISSUE_PATH = "/v1/svid";
/** Path of the public trust bundle: GET. */
export const BUNDLE_PATH = "/v1/bundle";

const STATUS_BY_CODE: Record<string, number> = {
  MESH_IDENTITY_CSR_MALFORMED: 400,
  MESH_IDENTITY_CSR_SIGNATURE: 400,
  MESH_IDENTITY_KEY_TYPE_NOT_ALLOWED: 400,
  MESH_IDENTITY_INVALID_PEM: 400,
  MESH_IDENTITY_ID_MISMATCH: 403,
  MESH_IDENTITY_EXTRA_SAN: 403,
  MESH_IDENTITY_CA_EXPIRED: 503,
};

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): void {
  sendJson(res, status, { error: { code, message } } satisfies IssuerErrorBody, headers);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > max) {
        resolve(undefined);
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * Creates the issuer service: workloads `POST /v1/svid` a CSR (PEM, or DER with
 * `content-type: application/pkcs10`) with `authorization: Bearer <token>`, and get back
 * JSON {@link IssueResponse}. `GET /v1/bundle` returns `{ bundlePem }` without
 * authentication (trust anchors are public). Errors are JSON {@link IssuerErrorBody}:
 * 401 missing or bad token, 403 identity mismatch or extra SANs, 400 malformed CSR or
 * disallowed key type, 413 body too large, 405/404 otherwise.
 *
 * @public
 */
export function createIssuer(options: IssuerOptions): Issuer {
  if (!options || typeof options !== "object")
    throw typeError("options", "an options object", options);
  const { ca, authenticator } = options;
  if (!ca || typeof ca.signCsr !== "function")
    throw typeError("options.ca", "a CertificateAuthority", ca);
  if (!authenticator || typeof authenticator.authenticate !== "function")
    throw typeError("options.authenticator", "an Authenticator", authenticator);
  const maxBody = integerIn("options.maxBodyBytes", options.maxBodyBytes, 16 * 1024, 1);
  const ttlMs =
    options.svidTtlMs === undefined
      ? undefined
      : duration("options.svidTtlMs", options.svidTtlMs, 0, 1, Number.MAX_SAFE_INTEGER);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === BUNDLE_PATH) {
      if (req.method !== "GET")
        return sendError(res, 405, "method_not_allowed", "use GET", { allow: "GET" });
      return sendJson(res, 200, { bundlePem: ca.bundle.pem });
    }
    if (path !== ISSUE_PATH)
      return sendError(res, 404, "not_found", `no such endpoint; POST ${ISSUE_PATH}`);
    if (req.method !== "POST")
      return sendError(res, 405, "method_not_allowed", "use POST", { allow: "POST" });
    const auth = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    const challenge = { "www-authenticate": 'Bearer realm="mesh-identity"' };
    if (!m)
      return sendError(
        res,
        401,
        "MESH_IDENTITY_UNAUTHENTICATED",
        "missing bearer token",
        challenge,
      );
    const id = await authenticator.authenticate(m[1] as string, req);
    if (!id)
      return sendError(
        res,
        401,
        "MESH_IDENTITY_UNAUTHENTICATED",
        "the bearer token is not valid",
        challenge,
      );
    const body = await readBody(req, maxBody);
    if (body === undefined) {
      res.setHeader("connection", "close");
      return sendError(res, 413, "payload_too_large", `the CSR is larger than ${maxBody} bytes`);
    }
    const isDer =
      (req.headers["content-type"] ?? "").startsWith("application/pkcs10") && body[0] === 0x30;
    try {
      const issued = ca.signCsr(isDer ? body : body.toString("latin1"), { spiffeId: id, ttlMs });
      publishIssued(issued.spiffeId.toString(), issued.notAfter);
      sendJson(res, 200, {
        spiffeId: issued.spiffeId.toString(),
        chainPem: issued.chainPem,
        bundlePem: issued.bundle.pem,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        serialNumber: issued.serialNumber,
      } satisfies IssueResponse);
    } catch (err) {
      if (err instanceof IdentityError) {
        const status = STATUS_BY_CODE[err.code] ?? 400;
        return sendError(res, status, err.code, err.message);
      }
      throw err;
    }
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        sendError(res, 500, "internal", (err as Error)?.message ?? "internal error");
      else res.destroy();
    });
  };
  const server: Server = options.tls
    ? createHttpsServer(options.tls, listener)
    : createHttpServer(listener);
  let url = "";
  return {
    server,
    get url() {
      return url;
    },
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const a = server.address() as AddressInfo;
          const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
          url = `${options.tls ? "https" : "http"}://${h}:${a.port}`;
          resolve(url);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
