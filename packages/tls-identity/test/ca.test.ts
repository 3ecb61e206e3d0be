import { X509Certificate } from "node:crypto";
import { describe, expect, test } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  createCsr,
  createTrustAnchor,
  csrToPem,
  exportPrivateKeyPem,
  generateKeyPair,
  type IdentityError,
  parseCsr,
  spiffeIdOf,
  TrustBundle,
  X509Svid,
} from "../src/index.js";
import { buildCertificate, buildName } from "../src/x509/build.js";
import { fakeClock, run, writeFiles } from "./helpers.js";

const ID = "spiffe://example.org/ns/prod/sa/web";
const anchor = createTrustAnchor({ trustDomain: "example.org" });
const ca = anchor.createAuthority();

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as IdentityError).code;
  }
  return undefined;
}

describe("issued SVIDs", () => {
  const key = generateKeyPair();
  const issued = ca.signCsr(csrToPem(createCsr(key, ID)), { spiffeId: ID });
  const leaf = issued.chain[0] as X509Certificate;

  test("follow the X.509-SVID profile (node X509Certificate)", () => {
    expect(issued.chain).toHaveLength(2);
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    expect(spiffeIdOf(leaf).toString()).toBe(ID);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(ca.certificate)).toBe(true);
    expect(leaf.verify(ca.certificate.publicKey)).toBe(true);
    expect(ca.certificate.verify(anchor.certificate.publicKey)).toBe(true);
    expect(ca.certificate.ca).toBe(true);
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(leaf.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]); // EKU
    expect(new X509Svid(issued.chain, key.privateKey).spiffeId.toString()).toBe(ID);
  });

  test("24 h by default, notBefore backdated 20 s", () => {
    const now = Date.now();
    const from = Date.parse(leaf.validFrom);
    const to = Date.parse(leaf.validTo);
    expect(Math.abs(now - 20_000 - from)).toBeLessThan(5_000);
    expect(Math.abs(now + 24 * 3600_000 - to)).toBeLessThan(5_000);
    expect(issued.notAfter).toBe(to);
  });

  test("are accepted by OpenSSL: text dump and chain verification against the bundle", async ({
    skip,
  }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const f = writeFiles({
      "leaf.pem": leaf.toString(),
      "intermediate.pem": ca.certificate.toString(),
      "bundle.pem": issued.bundle.pem,
    });
    const text = (await run("openssl", ["x509", "-in", f.path("leaf.pem"), "-noout", "-text"]))
      .stdout;
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(
      /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
    );
    expect(text).toMatch(new RegExp(`X509v3 Subject Alternative Name:\\s+URI:${ID}\\n`));
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    const caText = (
      await run("openssl", ["x509", "-in", f.path("intermediate.pem"), "-noout", "-text"])
    ).stdout;
    expect(caText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(caText).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    const verified = await run("openssl", [
      "verify",
      "-CAfile",
      f.path("bundle.pem"),
      "-untrusted",
      f.path("intermediate.pem"),
      "-purpose",
      "sslclient",
      f.path("leaf.pem"),
    ]);
    expect(verified.stdout.trim()).toBe(`${f.path("leaf.pem")}: OK`);
    // And a different trust anchor does not verify it.
    const other = createTrustAnchor({ trustDomain: "example.org" });
    const g = writeFiles({ "other.pem": other.certificate.toString() });
    await expect(
      run("openssl", [
        "verify",
        "-CAfile",
        g.path("other.pem"),
        "-untrusted",
        f.path("intermediate.pem"),
        f.path("leaf.pem"),
      ]),
    ).rejects.toThrow(/unable to get local issuer certificate|verification failed/);
  });

  test("OpenSSL reads the CSR this package writes", async ({ skip }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const f = writeFiles({ "req.pem": csrToPem(createCsr(generateKeyPair(), ID)) });
    const out = await run("openssl", [
      "req",
      "-in",
      f.path("req.pem"),
      "-noout",
      "-verify",
      "-text",
    ]);
    expect(`${out.stdout}${out.stderr}`).toMatch(/verify OK/i);
    expect(out.stdout).toContain(`URI:${ID}`);
  });

  test("CSRs made by OpenSSL are signed; private keys stay KeyObjects unless exported", async ({
    skip,
  }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const f = writeFiles({});
    await run("openssl", [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${f.dir}/k.pem`,
      "-out",
      `${f.dir}/r.pem`,
      "-subj",
      "/O=x",
      "-addext",
      `subjectAltName=URI:${ID}`,
    ]);
    const { readFileSync } = await import("node:fs");
    const res = ca.signCsr(readFileSync(`${f.dir}/r.pem`, "utf8"), { spiffeId: ID });
    expect(X509Svid.fromPem(res.chainPem, readFileSync(`${f.dir}/k.pem`)).spiffeId.toString()).toBe(
      ID,
    );
    expect(exportPrivateKeyPem(key)).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });
});

describe("CSR checks", () => {
  test("identity mismatch, wrong trust domain, extra SANs, key types, bad signature, garbage", async ({
    skip,
  }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const key = generateKeyPair();
    expect(
      codeOf(() =>
        ca.signCsr(createCsr(key, "spiffe://example.org/ns/prod/sa/admin"), { spiffeId: ID }),
      ),
    ).toBe("MESH_IDENTITY_ID_MISMATCH");
    expect(
      codeOf(() =>
        ca.signCsr(createCsr(key, "spiffe://evil.org/x"), { spiffeId: "spiffe://evil.org/x" }),
      ),
    ).toBe("MESH_IDENTITY_ID_MISMATCH");
    // Extra DNS SAN via OpenSSL.
    const f = writeFiles({});
    await run("openssl", [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${f.dir}/k.pem`,
      "-out",
      `${f.dir}/r.pem`,
      "-subj",
      "/O=x",
      "-addext",
      `subjectAltName=URI:${ID},DNS:web.example.org`,
    ]);
    const { readFileSync } = await import("node:fs");
    const err = (() => {
      try {
        ca.signCsr(readFileSync(`${f.dir}/r.pem`, "utf8"), { spiffeId: ID });
      } catch (e) {
        return e as IdentityError;
      }
    })();
    expect(err?.code).toBe("MESH_IDENTITY_EXTRA_SAN");
    expect(err?.message).toMatch(/dNSName/);
    // RSA is refused unless allowed.
    const rsa = generateKeyPair("rsa-2048");
    expect(codeOf(() => ca.signCsr(createCsr(rsa, ID), { spiffeId: ID }))).toBe(
      "MESH_IDENTITY_KEY_TYPE_NOT_ALLOWED",
    );
    const rsaCa = anchor.createAuthority({ allowedKeyTypes: ["ec-p256", "rsa-2048"] });
    expect(
      rsaCa.signCsr(createCsr(rsa, ID), { spiffeId: ID }).chain[0]?.publicKey.asymmetricKeyType,
    ).toBe("rsa");
    // Tampered signature.
    const der = createCsr(key, ID);
    der[der.length - 5] = (der[der.length - 5] as number) ^ 0xff;
    expect(codeOf(() => parseCsr(der))).toBe("MESH_IDENTITY_CSR_SIGNATURE");
    expect(codeOf(() => parseCsr("not a csr"))).toBe("MESH_IDENTITY_CSR_MALFORMED");
    expect(codeOf(() => parseCsr(Buffer.from([0x30, 0x03, 1, 2, 3])))).toBe(
      "MESH_IDENTITY_CSR_MALFORMED",
    );
  });

  test("options are validated with the standard message format", () => {
    expect(() => createTrustAnchor({ trustDomain: "x", ttlMs: -1 })).toThrow(
      "options.ttlMs: expected a duration in ms in 1..",
    );
    expect(() => anchor.createAuthority({ allowedKeyTypes: ["dsa" as never] })).toThrow(
      /^init.allowedKeyTypes: expected an array of/,
    );
    expect(() => ca.signCsr("x", {} as never)).toThrow(
      "options.spiffeId: expected the authenticated SPIFFE ID, got undefined",
    );
  });
});

describe("validity", () => {
  test("a leaf never outlives the issuing chain", () => {
    const clock = fakeClock();
    const root = createTrustAnchor({ trustDomain: "example.org", ttlMs: 3600_000, clock });
    const inter = root.createAuthority({ ttlMs: 10 * 3600_000 }); // capped at the root's hour
    expect(Date.parse(inter.certificate.validTo)).toBeLessThanOrEqual(
      Date.parse(root.certificate.validTo),
    );
    const svid = inter.issue(ID); // asks for 24 h
    expect(svid.notAfter).toBeLessThanOrEqual(Date.parse(root.certificate.validTo));
    clock.advance(2 * 3600_000);
    expect(codeOf(() => inter.issue(ID))).toBe("MESH_IDENTITY_CA_EXPIRED");
  });
});

describe("trust bundles", () => {
  test("several anchors: SVIDs from either root verify (root rotation)", async ({ skip }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const newRoot = createTrustAnchor({ trustDomain: "example.org" });
    const bundle = anchor.bundle.with(newRoot.certificate);
    expect(bundle.certificates).toHaveLength(2);
    const parsed = TrustBundle.fromPem(bundle.pem);
    expect(parsed.certificates.map((c) => c.fingerprint256)).toEqual(
      bundle.certificates.map((c) => c.fingerprint256),
    );
    expect(parsed.with(anchor.certificate).certificates).toHaveLength(2); // deduplicated
    const oldSvid = ca.issue(ID);
    const newSvid = newRoot.createAuthority().issue(ID);
    const f = writeFiles({
      "bundle.pem": parsed.pem,
      "old.pem": oldSvid.chainPem,
      "new.pem": newSvid.chainPem,
    });
    for (const name of ["old.pem", "new.pem"]) {
      const out = await run("openssl", [
        "verify",
        "-CAfile",
        f.path("bundle.pem"),
        "-untrusted",
        f.path(name),
        f.path(name),
      ]);
      expect(out.stdout).toContain(": OK");
    }
    expect(parsed.without(anchor.certificate.fingerprint256).has(anchor.certificate)).toBe(false);
    expect(() => TrustBundle.fromPem(oldSvid.certificate.toString())).toThrow(
      /not a CA certificate/,
    );
    expect(() => TrustBundle.fromPem("garbage")).toThrow(
      expect.objectContaining({ code: "MESH_IDENTITY_INVALID_PEM" }),
    );
  });

  test("an SVID must have exactly one URI SAN", () => {
    const k = generateKeyPair();
    const der = buildCertificate({
      profile: { kind: "leaf", spiffeId: "spiffe://example.org/a" },
      subject: buildName({ organization: "x" }),
      issuer: buildName({ organization: "x" }),
      publicKey: k.publicKey,
      notBefore: new Date(Date.now() - 1000),
      notAfter: new Date(Date.now() + 60_000),
      signingKey: k.privateKey,
    });
    expect(spiffeIdOf(new X509Certificate(der)).toString()).toBe("spiffe://example.org/a");
    expect(codeOf(() => spiffeIdOf(anchor.certificate))).toBe("MESH_IDENTITY_INVALID_CERTIFICATE");
    expect(codeOf(() => new X509Svid(ca.issue(ID).chain, generateKeyPair().privateKey))).toBe(
      "MESH_IDENTITY_INVALID_CERTIFICATE",
    );
  });
});

describe("server certificates for the control plane", () => {
  test("a TLS server certificate for DNS names, signed by the root, is accepted by a real TLS client", async () => {
    const { createServer } = await import("node:https");
    const { request } = await import("node:https");
    const server = anchor.issueServerCertificate({ dnsNames: ["injector.mesh.svc", "localhost"] });
    const cert = new X509Certificate(server.certificatePem);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe("DNS:injector.mesh.svc, DNS:localhost");
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // serverAuth only: no client use
    expect(cert.verify(anchor.certificate.publicKey)).toBe(true);
    expect(server.notAfter).toBeLessThanOrEqual(Date.parse(anchor.certificate.validTo));
    const https = createServer({ cert: server.certificatePem, key: server.keyPem }, (_q, s) =>
      s.end("ok"),
    );
    await new Promise<void>((r) => https.listen(0, "127.0.0.1", r));
    const port = (https.address() as { port: number }).port;
    const get = (servername: string) =>
      new Promise<string>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port, servername, ca: anchor.certificate.toString(), agent: false },
          (res) => {
            let body = "";
            res.on("data", (c) => (body += c));
            res.on("end", () => resolve(body));
          },
        );
        req.on("error", reject);
        req.end();
      });
    try {
      expect(await get("injector.mesh.svc")).toBe("ok");
      await expect(get("other.mesh.svc")).rejects.toThrow(/altnames/);
    } finally {
      https.close();
    }
    expect(() => anchor.issueServerCertificate({ dnsNames: [] })).toThrow(
      "options.dnsNames: expected a non-empty list of DNS names",
    );
    expect(() => anchor.issueServerCertificate({ dnsNames: ["bad name"] })).toThrow(
      'options.dnsNames[0]: expected a DNS name, got "bad name"',
    );
  });
});
