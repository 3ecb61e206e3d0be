import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  createCsr,
  createIssuer,
  createTrustAnchor,
  csrToPem,
  generateKeyPair,
  type IssuedEvent,
  type Issuer,
  requestSvid,
  staticTokenAuthenticator,
  tokenFileAuthenticator,
} from "../src/index.js";
import { fakeClock, writeFiles } from "./helpers.js";

const anchor = createTrustAnchor({ trustDomain: "prod.example" });
const ca = anchor.createAuthority();
const WEB = "spiffe://prod.example/ns/prod/sa/web";
const files = writeFiles({ "tokens.json": JSON.stringify({ "web-token-123": WEB }) });
let issuer: Issuer;
let url: string;

beforeAll(async () => {
  issuer = createIssuer({ ca, authenticator: tokenFileAuthenticator(files.path("tokens.json")) });
  url = await issuer.listen();
});
afterAll(() => issuer.close());

async function post(body: string | Buffer, headers: Record<string, string>) {
  const res = await fetch(`${url}/v1/svid`, { method: "POST", body, headers });
  return {
    status: res.status,
    json: (await res.json()) as { error?: { code: string; message: string } } & Record<
      string,
      unknown
    >,
  };
}

describe("issuer service", () => {
  test("a workload with a valid token gets its chain and the bundle; the event fires", async () => {
    const seen: IssuedEvent[] = [];
    const onIssued = (m: unknown) => seen.push(m as IssuedEvent);
    subscribe("mesh:identity:issued", onIssued);
    try {
      const { svid, bundle } = await requestSvid({ url, spiffeId: WEB, token: "web-token-123" });
      expect(svid.spiffeId.toString()).toBe(WEB);
      expect(svid.chain).toHaveLength(2);
      expect(bundle.pem).toBe(anchor.certificate.toString());
      expect(seen).toEqual([{ spiffeId: WEB, notAfter: svid.notAfter }]);
    } finally {
      unsubscribe("mesh:identity:issued", onIssued);
    }
  });

  test("PEM CSRs work too, and the bundle is public", async () => {
    const r = await post(csrToPem(createCsr(generateKeyPair(), WEB)), {
      authorization: "Bearer web-token-123",
    });
    expect(r.status).toBe(200);
    expect(r.json.spiffeId).toBe(WEB);
    const b = await fetch(`${url}/v1/bundle`);
    expect(((await b.json()) as { bundlePem: string }).bundlePem).toBe(
      anchor.certificate.toString(),
    );
  });

  test("401 for a missing or bad token, with a JSON error", async () => {
    const csr = csrToPem(createCsr(generateKeyPair(), WEB));
    const none = await post(csr, {});
    expect(none.status).toBe(401);
    expect(none.json.error).toEqual({
      code: "MESH_IDENTITY_UNAUTHENTICATED",
      message: "missing bearer token",
    });
    const bad = await post(csr, { authorization: "Bearer nope-nope-nope" });
    expect(bad.status).toBe(401);
    expect(bad.json.error?.message).toBe("the bearer token is not valid");
    await expect(requestSvid({ url, spiffeId: WEB, token: "wrong-token" })).rejects.toMatchObject({
      code: "MESH_IDENTITY_ISSUER_REJECTED",
      status: 401,
    });
  });

  test("403 when the CSR asks for another identity", async () => {
    const r = await post(
      csrToPem(createCsr(generateKeyPair(), "spiffe://prod.example/ns/prod/sa/admin")),
      {
        authorization: "Bearer web-token-123",
      },
    );
    expect(r.status).toBe(403);
    expect(r.json.error?.code).toBe("MESH_IDENTITY_ID_MISMATCH");
    expect(r.json.error?.message).toMatch(
      /asks for "spiffe:\/\/prod.example\/ns\/prod\/sa\/admin" but the requester is authenticated as/,
    );
  });

  test("400 for a malformed CSR, 413 when too large, 404/405 elsewhere", async () => {
    const r = await post(
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
      {
        authorization: "Bearer web-token-123",
      },
    );
    expect(r.status).toBe(400);
    expect(r.json.error?.code).toBe("MESH_IDENTITY_CSR_MALFORMED");
    const der = await post(Buffer.from([0x30, 0x01, 0x00]), {
      authorization: "Bearer web-token-123",
      "content-type": "application/pkcs10",
    });
    expect(der.status).toBe(400);
    const big = await post("x".repeat(20_000), { authorization: "Bearer web-token-123" });
    expect(big.status).toBe(413);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await fetch(`${url}/v1/svid`)).status).toBe(405);
  });

  test("the token file is re-read when it changes", async () => {
    const clock = fakeClock();
    const auth = tokenFileAuthenticator(files.path("tokens.json"), { clock });
    expect(await auth.authenticate("new-token-456", undefined as never)).toBeUndefined();
    writeFileSync(files.path("tokens.json"), JSON.stringify({ "new-token-456": WEB }));
    expect(await auth.authenticate("new-token-456", undefined as never)).toBeUndefined(); // not re-checked yet
    clock.advance(1000);
    expect(String(await auth.authenticate("new-token-456", undefined as never))).toBe(WEB);
    expect(() => staticTokenAuthenticator({ short: WEB })).toThrow(
      "tokens key: expected a token of at least 8 characters",
    );
    expect(() => staticTokenAuthenticator({ "long-enough": "http://x" })).toThrow(
      /invalid SPIFFE ID/,
    );
  });

  test("an unreachable issuer is reported as unavailable", async () => {
    const gone = createIssuer({ ca, authenticator: staticTokenAuthenticator({}) });
    const goneUrl = await gone.listen();
    await gone.close();
    await expect(requestSvid({ url: goneUrl, spiffeId: WEB, token: "x" })).rejects.toMatchObject({
      code: "MESH_IDENTITY_ISSUER_UNAVAILABLE",
    });
  });
});
