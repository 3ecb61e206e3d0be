import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type FakeKubeApiserver,
  startFakeKubeApiserver,
} from "../../../test/fake-kube-apiserver.js";
import {
  createIssuer,
  createTrustAnchor,
  type IdentityError,
  type Issuer,
  requestSvid,
  SvidSource,
  tokenReviewAuthenticator,
} from "../src/index.js";
import { tempDir } from "./helpers.js";

// The issuer's Kubernetes authenticator against the fake API server (no cluster here):
// TokenReview for the workload's projected token, SelfSubjectAccessReview at start.
const anchor = createTrustAnchor({ trustDomain: "prod.example" });
const ca = anchor.createAuthority();
const WEB = "spiffe://prod.example/ns/prod/sa/web";
let api: FakeKubeApiserver;
let issuer: Issuer;
let url: string;
const dir = tempDir("issuer-k8s-");
const issuerToken = join(dir, "issuer-token");

beforeAll(async () => {
  api = await startFakeKubeApiserver({ tokens: ["issuer-sa-token"] });
  writeFileSync(issuerToken, "issuer-sa-token\n");
  api.reviews.set("web-token-1", {
    username: "system:serviceaccount:prod:web",
    audiences: ["mesh-identity"],
  });
  api.reviews.set("other-audience", {
    username: "system:serviceaccount:prod:web",
    audiences: ["vault"],
  });
  api.reviews.set("alice-token", { username: "alice", audiences: ["mesh-identity"] });
  const authenticator = await tokenReviewAuthenticator({
    trustDomain: "prod.example",
    api: { server: api.url, ca: api.ca, tokenFile: issuerToken },
  });
  issuer = createIssuer({ ca, authenticator });
  url = await issuer.listen();
});
afterAll(async () => {
  await issuer.close();
  await api.close();
});

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: IdentityError & { status?: number }) => ({ status: err.status, message: err.message }),
  );

describe("tokenReviewAuthenticator (Kubernetes ServiceAccount tokens)", () => {
  test("a projected service-account token gets spiffe://<td>/ns/NS/sa/SA; the review asks for the mesh audience", async () => {
    const { svid } = await requestSvid({ url, spiffeId: WEB, token: "web-token-1" });
    expect(svid.spiffeId.toString()).toBe(WEB);
    expect(api.requests).toContain("POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
    expect(api.requests).toContain("POST /apis/authentication.k8s.io/v1/tokenreviews");
  });

  test("a CSR for any other ID is refused with 403 and the reason", async () => {
    const r = await rejection(
      requestSvid({
        url,
        spiffeId: "spiffe://prod.example/ns/prod/sa/admin",
        token: "web-token-1",
      }),
    );
    expect(r.status).toBe(403);
    expect(r.message).toContain("MESH_IDENTITY_ID_MISMATCH");
    expect(r.message).toContain("authenticated as spiffe://prod.example/ns/prod/sa/web");
  });

  test("invalid tokens, other audiences and non-service-account users get 401 saying why", async () => {
    const bad = await rejection(requestSvid({ url, spiffeId: WEB, token: "forged" }));
    expect(bad.status).toBe(401);
    expect(bad.message).toContain("invalid bearer token");
    const aud = await rejection(requestSvid({ url, spiffeId: WEB, token: "other-audience" }));
    expect(aud.status).toBe(401);
    expect(aud.message).toContain("audiences");
    const user = await rejection(requestSvid({ url, spiffeId: WEB, token: "alice-token" }));
    expect(user.status).toBe(401);
    expect(user.message).toContain('"alice" is not a service account');
  });

  test("a workload's token file is re-read for each CSR: a token rotated by kubelet is used at the next renewal", async () => {
    const tokenFile = join(dir, "web-token");
    writeFileSync(tokenFile, "web-token-1");
    const source = SvidSource.fromIssuer({ url, spiffeId: WEB, tokenFile });
    try {
      await source.ready();
      // ready() resolves inside the first attempt, before it is marked finished; a
      // refreshNow() in the same tick would join that attempt instead of starting one.
      await new Promise((r) => setImmediate(r));
      // kubelet rotates the projected token; the API server stops accepting the old one.
      api.reviews.set("web-token-2", {
        username: "system:serviceaccount:prod:web",
        audiences: ["mesh-identity"],
      });
      api.reviews.delete("web-token-1");
      writeFileSync(tokenFile, "web-token-2\n");
      const before = source.svid.serialNumber;
      const failed: Error[] = [];
      source.on("refresh-failed", ({ error }) => failed.push(error));
      await source.refreshNow();
      expect(failed).toEqual([]);
      expect(source.svid.serialNumber).not.toBe(before);
      expect(source.svid.spiffeId.toString()).toBe(WEB);
    } finally {
      source.close();
      api.reviews.set("web-token-1", {
        username: "system:serviceaccount:prod:web",
        audiences: ["mesh-identity"],
      });
    }
  });

  test("the issuer's own token is re-read too (its service-account token rotates)", async () => {
    api.tokens = new Set(["issuer-sa-token-2"]);
    writeFileSync(issuerToken, "issuer-sa-token-2\n");
    const { svid } = await requestSvid({ url, spiffeId: WEB, token: "web-token-1" });
    expect(svid.spiffeId.toString()).toBe(WEB);
  });

  test("start fails clearly when the issuer may not create tokenreviews", async () => {
    api.allowTokenReviews = false;
    try {
      await expect(
        tokenReviewAuthenticator({
          trustDomain: "prod.example",
          api: { server: api.url, ca: api.ca, tokenFile: issuerToken },
        }),
      ).rejects.toThrow(/may not create tokenreviews.*system:auth-delegator/);
    } finally {
      api.allowTokenReviews = true;
    }
  });

  test("with the API server unreachable the issuer answers 503, so workloads retry", async () => {
    const down = await startFakeKubeApiserver({ tokens: ["t"] });
    const authenticator = await tokenReviewAuthenticator({
      trustDomain: "prod.example",
      api: { server: down.url, ca: down.ca, token: "t" },
    });
    await down.close();
    const i = createIssuer({ ca, authenticator });
    const u = await i.listen();
    try {
      const r = await rejection(requestSvid({ url: u, spiffeId: WEB, token: "web-token-1" }));
      expect(r.status).toBe(503);
      expect(r.message).toContain("MESH_IDENTITY_AUTHENTICATOR_UNAVAILABLE");
    } finally {
      await i.close();
    }
  });
});
