/**
 * CPU-bound identity work in one pinned process: SVID issuances per second (key generation
 * + CSR + CA signature) and mTLS handshakes per second (TLS 1.3, client certificate
 * required, client and server in this process over loopback), for ECDSA P-256 through
 * @mesh/tls-identity and RSA-2048 through node-forge. Prints `RESULT {json}`.
 * Usage: `node identity-worker.ts <seconds-per-measurement>`.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { connect, createServer, type TlsOptions } from "node:tls";
import forge from "node-forge";
import { importMesh, MeshUnavailableError } from "./mesh-adapters.ts";

const seconds = Math.max(0.2, Math.min(60, Number(process.argv[2] ?? 5)));
const SPIFFE_ID = "spiffe://bench.example/ns/default/sa/client";

/** Repeats `fn` for the time budget (at least once); returns operations per second. */
async function rate(
  fn: () => unknown | Promise<unknown>,
): Promise<{ perSecond: number; ops: number }> {
  await fn(); // warm-up
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let ops = 0;
  for (let i = 0; i < 10_000_000 && (ops === 0 || performance.now() < deadline); i++) {
    await fn();
    ops++;
  }
  const elapsed = (performance.now() - start) / 1000;
  return { perSecond: Math.round((ops / elapsed) * 10) / 10, ops };
}

/** Sequential TLS handshakes against a server with the given options. */
async function handshakes(server: TlsOptions, client: { cert: string; key: string; ca: string }) {
  const srv = createServer(server, (socket) => socket.end());
  srv.on("tlsClientError", () => {});
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as AddressInfo).port;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const socket = connect({
        host: "127.0.0.1",
        port,
        ...client,
        minVersion: "TLSv1.3",
        maxVersion: "TLSv1.3",
        // SPIFFE SVIDs carry a URI SAN, no DNS name; the chain is still verified.
        checkServerIdentity: () => undefined,
        session: undefined,
      });
      socket.once("secureConnect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", reject);
    });
  try {
    return await rate(one);
  } finally {
    srv.close();
  }
}

async function ecdsa() {
  const mod = await importMesh("tls-identity");
  type Anchor = { createAuthority(o?: object): Ca };
  type Ca = {
    signCsr(csr: Uint8Array, o: { spiffeId: string }): unknown;
    issue(id: string): { chainPem: string; privateKey: import("node:crypto").KeyObject };
    bundle: { pem: string };
  };
  const anchor = (mod.createTrustAnchor as (o: object) => Anchor)({ trustDomain: "bench.example" });
  const ca = anchor.createAuthority();
  const generateKeyPair = mod.generateKeyPair as (t: string) => unknown;
  const createCsr = mod.createCsr as (kp: unknown, id: string) => Uint8Array;
  const issuance = await rate(() =>
    ca.signCsr(createCsr(generateKeyPair("ec-p256"), SPIFFE_ID), { spiffeId: SPIFFE_ID }),
  );
  const serverSvid = ca.issue("spiffe://bench.example/ns/default/sa/server");
  const clientSvid = ca.issue(SPIFFE_ID);
  const serverTlsOptions = mod.serverTlsOptions as ((m: object) => TlsOptions) | undefined;
  const keyPem = (k: import("node:crypto").KeyObject) =>
    k.export({ type: "pkcs8", format: "pem" }).toString();
  const serverOptions: TlsOptions = serverTlsOptions
    ? serverTlsOptions({ svid: serverSvid, bundle: ca.bundle })
    : {
        cert: serverSvid.chainPem,
        key: keyPem(serverSvid.privateKey),
        ca: ca.bundle.pem,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: "TLSv1.3",
      };
  const hs = await handshakes(serverOptions, {
    cert: clientSvid.chainPem,
    key: keyPem(clientSvid.privateKey),
    ca: ca.bundle.pem,
  });
  return { issuance, handshakes: hs };
}

function forgeCa() {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = "01";
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [
    { name: "organizationName", value: "bench" },
    { name: "commonName", value: "bench RSA CA" },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { keys, cert };
}

let serial = 2;
function forgeIssue(ca: ReturnType<typeof forgeCa>, id: string) {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([{ name: "organizationName", value: "bench" }]);
  csr.setAttributes([
    {
      name: "extensionRequest",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 6, value: id }] }],
    },
  ]);
  csr.sign(keys.privateKey, forge.md.sha256.create());
  // The CA side: verify the CSR, then sign a leaf for it.
  if (!csr.verify()) throw new Error("forge CSR did not verify");
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey!;
  cert.serialNumber = (serial++).toString(16).padStart(2, "0");
  cert.validity.notBefore = new Date(Date.now() - 20_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject(csr.subject.attributes);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: [{ type: 6, value: id }] },
  ]);
  cert.sign(ca.keys.privateKey, forge.md.sha256.create());
  return {
    cert: forge.pki.certificateToPem(cert),
    key: forge.pki.privateKeyToPem(keys.privateKey),
  };
}

async function rsa() {
  const ca = forgeCa();
  const issuance = await rate(() => forgeIssue(ca, SPIFFE_ID));
  const caPem = forge.pki.certificateToPem(ca.cert);
  const server = forgeIssue(ca, "spiffe://bench.example/ns/default/sa/server");
  const client = forgeIssue(ca, SPIFFE_ID);
  const hs = await handshakes(
    {
      cert: server.cert,
      key: server.key,
      ca: caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
    },
    { cert: client.cert, key: client.key, ca: caPem },
  );
  return { issuance, handshakes: hs };
}

const out: Record<string, unknown> = {};
try {
  out.ecdsa = await ecdsa();
} catch (error) {
  out.ecdsa = {
    unavailable:
      error instanceof MeshUnavailableError
        ? error.reason
        : String((error as Error).stack ?? error),
  };
}
out.rsa = await rsa();
process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
process.exit(0);
