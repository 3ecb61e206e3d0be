import { execFile } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  createIssuer,
  createTrustAnchor,
  type Issuer,
  staticTokenAuthenticator,
} from "@mesh/tls-identity";
import { describe, expect, it } from "vitest";
import { missingPeer } from "../../../../scripts/peers.mjs";
import { tempDir } from "../helpers.js";
import { admin, BOOKS, cleanupAfterAll, metric, proxy, ready, TD, until } from "./fixtures.js";

const run = promisify(execFile);

/**
 * A root CA and an HTTPS serving certificate for 127.0.0.1 under it, made with the openssl
 * CLI (the issuer's own TLS is ordinary web PKI, not an SVID).
 */
async function servingPki(dir: string, name: string) {
  const p = (f: string) => join(dir, `${name}-${f}`);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"];
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
  ]);
  return {
    rootPem: readFileSync(p("root.pem"), "utf8"),
    cert: readFileSync(p("server.pem"), "utf8"),
    key: readFileSync(p("server.key"), "utf8"),
  };
}

describe.skipIf(missingPeer("openssl"))("identity.issuer.bundleFile", () => {
  const defer = cleanupAfterAll();

  it("is re-read for each request to the issuer: after the issuer's serving certificate moves to a new root, renewals resume once the file has it", async () => {
    const dir = tempDir();
    const [a, b] = await Promise.all([servingPki(dir, "a"), servingPki(dir, "b")]);
    const ca = createTrustAnchor({ trustDomain: TD }).createAuthority();
    let issuer: Issuer | undefined;
    let port = 0;
    const serveWith = async (pki: typeof a) => {
      await issuer?.close();
      issuer = createIssuer({
        ca,
        authenticator: staticTokenAuthenticator({ "books-token-1": BOOKS }),
        tls: { cert: pki.cert, key: pki.key },
        svidTtlMs: 3_000,
      });
      const url = await issuer.listen(port, "127.0.0.1");
      port = Number(new URL(url).port);
      return url;
    };
    const url = await serveWith(a);
    defer(() => issuer?.close());
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "books-token-1");
    const bundleFile = join(dir, "issuer-ca.pem");
    writeFileSync(bundleFile, a.rootPem);

    const books = await proxy({
      identity: {
        trustDomain: TD,
        id: BOOKS,
        issuer: { url, tokenFile, bundleFile, bundleRefresh: "200ms" },
        renewal: { fraction: 0.5, min: "200ms", retryInitial: "100ms", retryMax: "300ms" },
      },
      inbound: { listen: "127.0.0.1:0", app: "127.0.0.1:1" },
    });
    defer(() => books.stop());
    await ready(books);
    const counters = async () => {
      const text = (await admin(books, "/metrics")).body;
      return {
        refreshes: metric(text, "identity_cert_refresh_total"),
        failures: metric(text, "identity_cert_refresh_failures_total"),
      };
    };

    // The issuer's serving certificate is re-issued under root b: root a no longer verifies it.
    await serveWith(b);
    const failing = await counters();
    await until(
      async () => (await counters()).failures >= failing.failures + 2,
      "renewals failing against the re-issued issuer certificate",
    );
    // The bundle file gains root b (replaced atomically): the next request verifies again.
    writeFileSync(`${bundleFile}.tmp`, `${a.rootPem}${b.rootPem}`);
    renameSync(`${bundleFile}.tmp`, bundleFile);
    const fixed = await counters();
    await until(
      async () => (await counters()).refreshes >= fixed.refreshes + 2,
      "renewals succeeding with the new issuer CA",
    );
    expect((await admin(books, "/ready")).status).toBe(200);
    const log = await books.waitForLog(
      (l) => l.msg === "identity certificate renewal failed; the current certificate keeps serving",
    );
    expect(String(log.err)).toMatch(/certificate|verify|issuer/i);
  });
});
