import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CertificateAuthority, createTrustAnchor, type TrustBundle } from "@mesh/tls-identity";
import { describe, expect, it } from "vitest";
import { type ProxyProcess, tempDir } from "../helpers.js";
import {
  BOOKS,
  certAnchor,
  cleanupAfterAll,
  echoApp,
  expectStaleClientRefused,
  label,
  MeshLoad,
  meshPair,
  ready,
  TD,
  tcpEcho,
  trusted,
  until,
  WEB,
} from "./fixtures.js";

/** Replaces a file atomically (write aside, rename), as cert-manager and SPIRE helpers do. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** One workload's watched identity files in a directory of its own. */
class IdentityFiles {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly bundle: string;
  constructor(
    root: string,
    readonly id: string,
  ) {
    this.dir = join(root, id.split("/").pop() as string);
    mkdirSync(this.dir);
    this.cert = join(this.dir, "svid.pem");
    this.key = join(this.dir, "key.pem");
    this.bundle = join(this.dir, "bundle.pem");
  }
  /** Writes an SVID from `ca`: key first, then the certificate (a mismatch in between is retried). */
  issueFrom(ca: CertificateAuthority): void {
    const svid = ca.issue(this.id);
    replace(this.key, svid.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    replace(this.cert, svid.chainPem);
  }
  trust(bundle: TrustBundle): void {
    replace(this.bundle, bundle.pem);
  }
  section(): Record<string, unknown> {
    return {
      trustDomain: TD,
      id: this.id,
      files: { cert: this.cert, key: this.key, bundle: this.bundle },
      // A key/cert pair caught half-replaced is re-read soon.
      renewal: { retryInitial: "100ms", retryMax: "500ms" },
    };
  }
}

describe("trust-anchor rotation with identity.files", () => {
  const defer = cleanupAfterAll();

  it("bundle with both roots, certificates under the new root, old root removed: zero failures; an old-root client is then refused", async () => {
    const root = tempDir();
    const oldRoot = createTrustAnchor({ trustDomain: TD });
    const oldCa = oldRoot.createAuthority();
    const newRoot = createTrustAnchor({ trustDomain: TD });
    const newCa = newRoot.createAuthority();
    const both = oldRoot.bundle.with(newRoot.certificate);
    const [r1, r2] = [label(oldRoot.certificate), label(newRoot.certificate)];

    const web = new IdentityFiles(root, WEB);
    const books = new IdentityFiles(root, BOOKS);
    for (const f of [web, books]) {
      f.issueFrom(oldCa);
      f.trust(oldRoot.bundle);
    }
    const app = await echoApp();
    const echo = await tcpEcho();
    defer(
      () => app.close(),
      () => echo.close(),
    );
    const {
      books: booksProxy,
      web: webProxy,
      relay,
    } = await meshPair({ books: books.section(), web: web.section() }, app.address, echo.port);
    defer(
      () => booksProxy.stop(),
      () => webProxy.stop(),
      () => relay.close(),
    );
    await Promise.all([ready(booksProxy), ready(webProxy)]);
    expect((await trusted(webProxy)).join()).toBe(r1);

    const proxies = [webProxy, booksProxy];
    const everywhere = (check: (p: ProxyProcess) => Promise<boolean>) => async () =>
      (await Promise.all(proxies.map(check))).every(Boolean);
    // Every opaque TCP exchange is a new mTLS handshake with the files current at that moment.
    const load = new MeshLoad({
      outbound: webProxy.addresses.outbound as string,
      httpLoops: 2,
      tcp: webProxy.addresses.tcp?.echo as string,
      tcpGapMs: 30,
    });
    const handshakesAfter = async (what: string) => {
      const n = load.tcp;
      await until(() => load.tcp >= n + 5, `new handshakes after ${what}`);
    };
    try {
      // 1. Both roots in every bundle; certificates still under the old root.
      for (const f of [web, books]) f.trust(both);
      await until(
        everywhere(async (p) => (await trusted(p)).join() === [r1, r2].sort().join()),
        "both proxies trusting both roots",
      );
      await handshakesAfter("adding the new root");
      // 2. Certificates re-issued under the new root, one workload at a time.
      web.issueFrom(newCa);
      await until(async () => (await certAnchor(webProxy)) === r2, "web under the new root");
      await handshakesAfter("web moved");
      books.issueFrom(newCa);
      await until(async () => (await certAnchor(booksProxy)) === r2, "books under the new root");
      await handshakesAfter("books moved");
      // 3. The old root leaves every bundle.
      for (const f of [web, books]) f.trust(newRoot.bundle);
      await until(
        everywhere(async (p) => (await trusted(p)).join() === r2),
        "both proxies trusting only the new root",
      );
      await handshakesAfter("removing the old root");
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
    expect(load.http).toBeGreaterThan(20);
    // The HTTP/2 connection opened under the old root carried on through every step.
    expect(relay.accepted).toBe(1);

    // A peer still presenting a certificate under the removed root is refused.
    await expectStaleClientRefused(booksProxy, oldCa.issue(WEB), both.pem);
  });
});
