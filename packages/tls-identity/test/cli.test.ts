import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import { runCli } from "../src/cli/main.js";
import { createCsr, csrToPem, generateKeyPair, X509Svid } from "../src/index.js";
import { run, tempDir, writeFiles } from "./helpers.js";

async function cli(...argv: string[]) {
  let out = "";
  let err = "";
  const r = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { ...r, out, err };
}

describe("mesh-identity CLI", () => {
  test("ca create → issue → inspect, verified by OpenSSL", async ({ skip }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const dir = tempDir();
    const ca = join(dir, "ca");
    const w = join(dir, "w");
    expect((await cli("ca", "create", "--trust-domain", "example.org", "--out", ca)).code).toBe(0);
    expect(statSync(join(ca, "ca.key.pem")).mode & 0o777).toBe(0o600);
    const issued = await cli(
      "issue",
      "--id",
      "spiffe://example.org/ns/web/sa/api",
      "--ca",
      ca,
      "--out",
      w,
      "--ttl",
      "1",
    );
    expect(issued.code).toBe(0);
    expect(issued.out).toMatch(/^issued spiffe:\/\/example.org\/ns\/web\/sa\/api valid until /);
    const svid = X509Svid.fromPem(
      readFileSync(join(w, "svid.pem")),
      readFileSync(join(w, "svid.key.pem")),
    );
    expect(svid.notAfter - Date.now()).toBeLessThanOrEqual(3600_000);
    const v = await run("openssl", [
      "verify",
      "-CAfile",
      join(w, "bundle.pem"),
      "-untrusted",
      join(ca, "ca.pem"),
      join(w, "svid.pem"),
    ]);
    expect(v.stdout).toContain(": OK");
    const shown = await cli("inspect", join(w, "svid.pem"));
    expect(shown.out).toContain("SPIFFE ID:  spiffe://example.org/ns/web/sa/api");
    expect(shown.out).toContain("key type:   ec-p256");
    expect(shown.out).toContain("certificate 2 (CA)");
    const json = JSON.parse((await cli("inspect", join(w, "svid.pem"), "--json")).out);
    expect(json[0]).toMatchObject({
      spiffeId: "spiffe://example.org/ns/web/sa/api",
      ca: false,
      keyType: "ec-p256",
    });
  });

  test("serve runs the issuer from a CA folder and a token file", async () => {
    const dir = tempDir();
    await cli("ca", "create", "--trust-domain", "example.org", "--out", dir);
    const t = writeFiles({
      "tokens.json": JSON.stringify({ "secret-token-1": "spiffe://example.org/ns/a/sa/b" }),
    });
    const served = await cli(
      "serve",
      "--ca",
      dir,
      "--tokens",
      t.path("tokens.json"),
      "--port",
      "0",
    );
    expect(served.code).toBe(0);
    try {
      const url = /listening on (\S+)/.exec(served.out)?.[1] as string;
      const res = await fetch(`${url}/v1/svid`, {
        method: "POST",
        headers: { authorization: "Bearer secret-token-1" },
        body: csrToPem(createCsr(generateKeyPair(), "spiffe://example.org/ns/a/sa/b")),
      });
      expect(res.status).toBe(200);
    } finally {
      await served.close?.();
    }
  });

  test("--help on every command, and clear usage errors", async () => {
    for (const argv of [
      ["--help"],
      ["ca", "create", "--help"],
      ["issue", "--help"],
      ["inspect", "--help"],
      ["serve", "--help"],
    ]) {
      const r = await cli(...argv);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^Usage: mesh-identity/);
    }
    const missing = await cli("issue", "--ca", "x", "--out", "y");
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^mesh-identity issue: --id is required/);
    const bad = await cli("ca", "create", "--trust-domain", "Bad Domain", "--out", tempDir());
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/trust domain may contain only lowercase letters/);
    expect((await cli("frobnicate")).code).toBe(2);
    expect((await cli("issue", "--nope")).err).toMatch(/Unknown option '--nope'/);
  });
});
