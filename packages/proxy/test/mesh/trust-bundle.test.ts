import { createTrustAnchor } from "@mesh/tls-identity";
import { describe, expect, it } from "vitest";
import type { ProxyProcess } from "../helpers.js";
import {
  BOOKS,
  certAnchor,
  cleanupAfterAll,
  expectStaleClientRefused,
  label,
  MeshLoad,
  Pki,
  proxy,
  ready,
  startMesh,
  TD,
  trusted,
  until,
  WEB,
} from "./fixtures.js";

describe("trust-anchor rotation", () => {
  const defer = cleanupAfterAll();

  it("adds a new root, re-issues under it, removes the old one: zero failures under HTTP and new mTLS handshakes", async () => {
    // Certificates live 3 s (renewed about every 1.5 s) so step 2 needs no restart; the
    // bundle watch (200 ms) carries steps 1 and 3 without waiting for a renewal.
    const pki = new Pki(3_000);
    const { books, web, relay, tcp } = await startMesh(pki, defer, { bundleRefresh: "200ms" });

    const oldRoot = pki.anchor;
    const oldCa = pki.ca;
    const newRoot = createTrustAnchor({ trustDomain: TD });
    const newCa = newRoot.createAuthority();
    const [r1, r2] = [label(oldRoot.certificate), label(newRoot.certificate)];
    const both = oldRoot.bundle.with(newRoot.certificate);
    expect(await trusted(web)).toEqual([r1]);
    expect(await certAnchor(web)).toBe(r1);

    const load = new MeshLoad({
      outbound: web.addresses.outbound as string,
      httpLoops: 2,
      tcp,
      tcpGapMs: 30,
    });
    const everywhere = (check: (p: ProxyProcess) => Promise<boolean>) => async () =>
      (await check(web)) && (await check(books));
    try {
      // 1. The issuer publishes both roots, still signing under the old one.
      await pki.useAuthority(oldCa, both);
      await until(
        everywhere(async (p) => (await trusted(p)).join() === [r1, r2].sort().join()),
        "both proxies trusting both roots",
      );
      // 2. The issuer signs under the new root; certificates move over at their renewal.
      await pki.useAuthority(newCa, both);
      await until(
        everywhere(async (p) => (await certAnchor(p)) === r2),
        "both certificates chained to the new root",
      );
      // 3. The old root leaves the bundle.
      await pki.useAuthority(newCa);
      await until(
        everywhere(async (p) => (await trusted(p)).join() === r2),
        "both proxies trusting only the new root",
      );
      const handshakes = load.tcp;
      await until(() => load.tcp >= handshakes + 5, "new handshakes after the old root left");
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
    expect(load.http).toBeGreaterThan(50);
    // The HTTP/2 connection opened under the old root carried on through all three steps.
    expect(relay.accepted).toBe(1);

    // A client whose certificate chains to the removed root is now refused at the handshake.
    await expectStaleClientRefused(books, oldCa.issue(WEB), both.pem);
  });

  it("a root added at the issuer reaches a proxy holding a day-long certificate within the bundle refresh interval", async () => {
    const pki = new Pki(); // 24 h certificates: no renewal would happen during the test
    await pki.start();
    defer(() => pki.stop());
    const books = await proxy({
      identity: pki.identity(BOOKS, undefined, { bundleRefresh: "200ms" }),
      inbound: { listen: "127.0.0.1:0", app: "127.0.0.1:1" },
    });
    defer(() => books.stop());
    await ready(books);
    const newRoot = createTrustAnchor({ trustDomain: TD });
    await pki.useAuthority(pki.ca, pki.anchor.bundle.with(newRoot.certificate));
    await until(
      async () => (await trusted(books)).includes(label(newRoot.certificate)),
      "the new root in the proxy's bundle",
    );
    const log = await books.waitForLog(
      (l) => l.msg === "trust bundle changed at the issuer; renewing the certificate now",
    );
    expect(log.added).toHaveLength(1);
    expect(log.removed).toEqual([]);
  });
});
