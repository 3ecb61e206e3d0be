import { readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  createIssuer,
  createTrustAnchor,
  type Issuer,
  requestSvid,
  SvidSource,
  staticTokenAuthenticator,
} from "../src/index.js";
import { run, tempDir } from "./helpers.js";

const WEB = "spiffe://prod.example/ns/prod/sa/web";
const TOKEN = "web-token-123";
const ca = createTrustAnchor({ trustDomain: "prod.example" }).createAuthority();
const dir = tempDir();

/**
 * A root CA and an HTTPS serving certificate for 127.0.0.1 under it, made with the openssl
 * CLI (the issuer's own TLS is ordinary web PKI, not an SVID).
 */
async function servingPki(name: string): Promise<{ rootPem: string; cert: string; key: string }> {
  const p = (f: string) => join(dir, `${name}-${f}`);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("root.key"),
    "-out",
    p("root.pem"),
    "-subj",
    `/CN=${name} issuer root`,
    "-days",
    "2",
  ]);
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-CA",
    p("root.pem"),
    "-CAkey",
    p("root.key"),
    "-keyout",
    p("server.key"),
    "-out",
    p("server.pem"),
    "-subj",
    "/CN=issuer",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-days",
    "1",
  ]);
  return {
    rootPem: readFileSync(p("root.pem"), "utf8"),
    cert: readFileSync(p("server.pem"), "utf8"),
    key: readFileSync(p("server.key"), "utf8"),
  };
}

let a: Awaited<ReturnType<typeof servingPki>>;
let b: Awaited<ReturnType<typeof servingPki>>;
let issuer: Issuer;
let port = 0;

/** (Re)starts the HTTPS issuer on the same port with a serving certificate under `pki`. */
async function serveWith(pki: typeof a): Promise<string> {
  await issuer?.close();
  issuer = createIssuer({
    ca,
    authenticator: staticTokenAuthenticator({ [TOKEN]: WEB }),
    tls: { cert: pki.cert, key: pki.key },
  });
  const url = await issuer.listen(port, "127.0.0.1");
  port = Number(new URL(url).port);
  return url;
}

beforeAll(async () => {
  [a, b] = await Promise.all([servingPki("a"), servingPki("b")]);
});
afterAll(() => issuer?.close());

describe.skipIf(missingPeer("openssl"))("issuer client ca", () => {
  test("a ca function is called for every request, so a rotated CA file applies to the next CSR", async () => {
    const caFile = join(dir, "issuer-ca.pem");
    writeFileSync(caFile, a.rootPem);
    let calls = 0;
    const options = {
      url: await serveWith(a),
      spiffeId: WEB,
      token: TOKEN,
      ca: () => {
        calls++;
        return readFile(caFile);
      },
    };
    expect((await requestSvid(options)).svid.spiffeId.toString()).toBe(WEB);

    // The issuer's serving certificate is re-issued under a new root.
    await serveWith(b);
    await expect(requestSvid(options)).rejects.toMatchObject({
      code: "MESH_IDENTITY_ISSUER_UNAVAILABLE",
    });
    writeFileSync(caFile, `${a.rootPem}${b.rootPem}`);
    expect((await requestSvid(options)).svid.spiffeId.toString()).toBe(WEB);
    expect(calls).toBe(3);
  });

  test("an SvidSource renews through an issuer whose TLS root changed, once the CA file has the new root", async () => {
    const caFile = join(dir, "source-ca.pem");
    writeFileSync(caFile, a.rootPem);
    const source = SvidSource.fromIssuer({
      url: await serveWith(a),
      spiffeId: WEB,
      token: TOKEN,
      ca: () => readFile(caFile),
      retryInitialMs: 10,
      retryMaxMs: 50,
    });
    try {
      const first = await source.ready();
      await serveWith(b);
      writeFileSync(caFile, b.rootPem);
      await source.refreshNow();
      expect(source.svid.serialNumber).not.toBe(first.svid.serialNumber);
    } finally {
      source.close();
    }
  });

  test("a ca of the wrong type is a TypeError naming the option", async () => {
    const url = await serveWith(a);
    await expect(
      requestSvid({ url, spiffeId: WEB, token: TOKEN, ca: () => 42 as unknown as string }),
    ).rejects.toThrow(
      "options.ca: expected a PEM string or Buffer (or a function returning one), got number",
    );
  });
});
