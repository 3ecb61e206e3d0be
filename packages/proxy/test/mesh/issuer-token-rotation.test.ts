import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  createIssuer,
  createTrustAnchor,
  type Issuer,
  tokenReviewAuthenticator,
} from "@mesh/tls-identity";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type FakeKubeApiserver,
  startFakeKubeApiserver,
} from "../../../../test/fake-kube-apiserver.js";
import { createIdentity } from "../../src/transport/mtls/identity.js";
import { tempDir } from "../helpers.js";

// identity.issuer.tokenFile as a projected ServiceAccount token: the issuer verifies it with
// a TokenReview (fake API server, no cluster here), and when kubelet rotates the file the
// proxy's next renewal carries the new token.
describe("identity.issuer with a rotating ServiceAccount token", () => {
  const ID = "spiffe://cluster.local/ns/shop/sa/books";
  let api: FakeKubeApiserver;
  let issuer: Issuer;
  let url: string;
  const dir = tempDir();

  beforeAll(async () => {
    api = await startFakeKubeApiserver({ tokens: ["issuer-token"] });
    const who = { username: "system:serviceaccount:shop:books", audiences: ["mesh-identity"] };
    api.reviews.set("projected-1", who);
    const ca = createTrustAnchor({ trustDomain: "cluster.local" }).createAuthority();
    issuer = createIssuer({
      ca,
      authenticator: await tokenReviewAuthenticator({
        trustDomain: "cluster.local",
        api: { server: api.url, ca: api.ca, token: "issuer-token" },
      }),
    });
    url = await issuer.listen();
  });
  afterAll(async () => {
    await issuer.close();
    await api.close();
  });

  test("the proxy proves its ServiceAccount, and renews with the token kubelet rotated in", async () => {
    writeFileSync(join(dir, "token"), "projected-1\n");
    const identity = await createIdentity(
      { trustDomain: "cluster.local", id: ID, issuer: { url, tokenFile: "token" } },
      { baseDir: dir },
    );
    try {
      await identity.ready();
      expect(identity.svid.spiffeId.toString()).toBe(ID);
      // Let the first attempt finish before forcing the next one.
      await new Promise((r) => setImmediate(r));
      // Rotation: a new token in the file; the old one no longer passes the TokenReview.
      api.reviews.set("projected-2", api.reviews.get("projected-1")!);
      api.reviews.delete("projected-1");
      writeFileSync(join(dir, "token"), "projected-2\n");
      const first = identity.svid.serialNumber;
      await identity.source.refreshNow();
      expect(identity.lastError).toBeUndefined();
      expect(identity.svid.serialNumber).not.toBe(first);
      expect(identity.refreshFailures).toBe(0);
    } finally {
      identity.close();
    }
  });
});
