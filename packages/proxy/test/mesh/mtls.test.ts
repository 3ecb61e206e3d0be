import { writeFileSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import tls from "node:tls";
import { createTrustAnchor } from "@mesh/tls-identity";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingPeer } from "../../../../scripts/peers.mjs";
import { sClient as opensslClient } from "../../../../test/openssl.js";
import type { ProxyProcess } from "../helpers.js";
import {
  admin,
  BOOKS,
  CountingRelay,
  EVIL,
  echoApp,
  get,
  metric,
  Pki,
  proxy,
  ready,
  TD,
  WEB,
} from "./fixtures.js";

/** `openssl s_client` output; the tests that call it already require openssl (CI installs it). */
async function sClient(args: string[], input: string): Promise<string> {
  return (await opensslClient(args, input)) ?? "";
}

/**
 * Issuer + two meshed proxies + an HTTP/1.1 app, all real processes and sockets:
 * web's outbound → (counting relay) → books' inbound (mTLS, policy) → app.
 */
describe("mTLS between proxies", () => {
  const pki = new Pki();
  let app: Awaited<ReturnType<typeof echoApp>>;
  let books: ProxyProcess;
  let web: ProxyProcess;
  let evil: ProxyProcess;
  let relay: CountingRelay;

  beforeAll(async () => {
    await pki.start();
    app = await echoApp();
    books = await proxy({
      identity: pki.identity(BOOKS),
      inbound: {
        listen: "127.0.0.1:0",
        app: app.address,
        policy: {
          default: "deny",
          rules: [
            { allow: { identities: [WEB] } },
            {
              allow: { identities: ["spiffe://example.org/ns/default/*"] },
              routes: [{ pathPrefix: "/public" }],
            },
          ],
        },
      },
    });
    relay = new CountingRelay(books.addresses.inbound as string);
    const viaRelay = await relay.listen();
    const services = [
      { name: "books", discovery: { static: [{ address: viaRelay, identity: BOOKS }] } },
      {
        name: "impostor",
        discovery: {
          static: [
            {
              address: books.addresses.inbound,
              identity: "spiffe://example.org/ns/default/sa/other",
            },
          ],
        },
      },
    ];
    [web, evil] = await Promise.all([
      proxy({ identity: pki.identity(WEB), outbound: { listen: "127.0.0.1:0", services } }),
      proxy({
        identity: pki.identity(EVIL),
        outbound: {
          listen: "127.0.0.1:0",
          services: [
            {
              name: "books",
              discovery: { static: [{ address: books.addresses.inbound, identity: BOOKS }] },
            },
          ],
        },
      }),
    ]);
    await Promise.all([ready(books), ready(web), ready(evil)]);
  });

  afterAll(async () => {
    await Promise.all([books?.stop(), web?.stop(), evil?.stop()]);
    await Promise.all([relay?.close(), app?.close(), pki.stop()]);
  });

  it("carries HTTP/1.1 over one mTLS HTTP/2 connection and hands the app HTTP/1.1 with the verified client id", async () => {
    const out = web.addresses.outbound as string;
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        get(out, "books", `/items/${i}`, { "mesh-client-id": "spiffe://example.org/forged" }),
      ),
    );
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe(200);
      const seen = JSON.parse(r.body) as {
        httpVersion: string;
        url: string;
        headers: Record<string, string>;
      };
      expect(seen.httpVersion).toBe("1.1");
      expect(seen.url).toBe(`/items/${i}`);
      expect(seen.headers.host).toBe("books");
      expect(seen.headers["mesh-client-id"]).toBe(WEB);
      expect(seen.headers["mesh-orig-proto"]).toBeUndefined();
    }
    // 60 HTTP/1.1 requests on 60 client connections crossed on a single proxy-to-proxy connection.
    expect(relay.accepted).toBe(1);

    const bm = (await admin(books, "/metrics")).body;
    expect(
      metric(bm, "request_total", 'direction="inbound"', 'tls="true"', `client_id="${WEB}"`),
    ).toBeGreaterThanOrEqual(60);
    expect(metric(bm, "inbound_http_authz_allow_total")).toBeGreaterThanOrEqual(60);
    const wm = (await admin(web, "/metrics")).body;
    expect(
      metric(wm, "request_total", 'direction="outbound"', 'tls="true"', `server_id="${BOOKS}"`),
    ).toBeGreaterThanOrEqual(60);
    // The one proxy-to-proxy connection negotiated the post-quantum hybrid (Node 24's
    // OpenSSL 3.5; classical X25519 on an older OpenSSL) and is counted under it.
    const group = Number(process.versions.openssl.split(".")[1]) >= 5 ? "X25519MLKEM768" : "X25519";
    expect(
      metric(wm, "outbound_tls_connections_total", `server_id="${BOOKS}"`, `group="${group}"`),
    ).toBe(1);
    expect(
      metric(wm, "identity_cert_expiration_timestamp_seconds", `spiffe_id="${WEB}"`),
    ).toBeGreaterThan(Date.now() / 1000);
    expect(metric(wm, "identity_cert_refresh_total", `spiffe_id="${WEB}"`)).toBeGreaterThanOrEqual(
      1,
    );
    // The upstream is named for what it is: HTTP/2 inside mTLS, not plaintext h2c.
    const endpoints = JSON.parse((await admin(web, "/endpoints")).body) as {
      service: string;
      backends: { endpoints: { protocol: string }[] }[];
    }[];
    const booksService = endpoints.find((s) => s.service === "books");
    expect(booksService?.backends.flatMap((b) => b.endpoints.map((e) => e.protocol))).toEqual([
      "mtls-h2",
    ]);
  });

  it("carries an HTTP/1.1 app's chunked trailers across the mTLS HTTP/2 hop", async () => {
    const res = await request(`http://${web.addresses.outbound}/trailers`, {
      headers: { host: "books", te: "trailers" },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("chunked body");
    expect(res.trailers["x-checksum"]).toBe("abc");
  });

  it("answers 502 identity mismatch when the server proves another identity", async () => {
    const r = await get(web.addresses.outbound as string, "impostor", "/");
    expect(r.status).toBe(502);
    expect(r.headers["mesh-proxy-error"]).toBe("identity mismatch");
  });

  it("denies an authenticated identity the policy does not allow: 403, gRPC PERMISSION_DENIED, counted", async () => {
    const out = evil.addresses.outbound as string;
    const before = metric((await admin(books, "/metrics")).body, "inbound_http_authz_deny_total");
    const denied = await get(out, "books", "/private");
    expect(denied.status).toBe(403);
    expect(denied.headers["mesh-proxy-error"]).toMatch(/^forbidden by policy/);
    // The route-scoped rule admits the same identity on /public.
    const allowed = await get(out, "books", "/public/x");
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body).headers["mesh-client-id"]).toBe(EVIL);

    const session = http2.connect(`http://${out}`);
    const grpc = await new Promise<{ headers: http2.IncomingHttpHeaders; ended: boolean }>(
      (resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/books.Books/Get",
          ":authority": "books",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("response", (headers, flags) =>
          resolve({ headers, ended: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 }),
        );
        stream.on("error", reject);
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      },
    );
    session.close();
    expect(grpc.headers[":status"]).toBe(200);
    expect(grpc.headers["grpc-status"]).toBe("7");
    expect(grpc.ended).toBe(true); // trailers-only

    const after = metric((await admin(books, "/metrics")).body, "inbound_http_authz_deny_total");
    expect(after - before).toBe(2);
  });

  it("counts each client's requests under its own identity, interleaved on one authority", async () => {
    const count = async (id: string) =>
      metric(
        (await admin(books, "/metrics")).body,
        "request_total",
        'direction="inbound"',
        `client_id="${id}"`,
      );
    const [webBefore, evilBefore] = [await count(WEB), await count(EVIL)];
    // Alternating within well under a second: the inbound keeps one metric handle per
    // client, and a handle resolved for one client must never count another's request.
    for (let i = 0; i < 6; i++) {
      const who = i % 2 === 0 ? web : evil;
      const r = await get(who.addresses.outbound as string, "books", "/public/counted");
      expect(r.status).toBe(200);
    }
    const webAfter = await count(WEB);
    const evilAfter = await count(EVIL);
    expect(webAfter - webBefore).toBe(3);
    expect(evilAfter - evilBefore).toBe(3);
  });

  it("refuses plaintext clients when the policy needs an identity", async () => {
    const r = await get(books.addresses.inbound as string, "books", "/");
    expect(r.status).toBe(403);
    expect(JSON.stringify(r.headers)).not.toContain("mesh-client-id");
  });

  it("requires a client certificate and offers TLS 1.3 only (openssl s_client)", async ({
    skip,
  }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const target = books.addresses.inbound as string;
    const request = "GET /hello HTTP/1.1\r\nhost: books\r\nconnection: close\r\n\r\n";
    // No client certificate: the server asks for one (CertificateRequest → "Requested
    // Signature Algorithms") and closes the connection without answering.
    const anonymous = await sClient(
      ["-connect", target, "-tls1_3", "-brief", "-alpn", "http/1.1"],
      request,
    );
    expect(anonymous).toMatch(/Protocol version: TLSv1\.3/);
    expect(anonymous).toMatch(/Requested Signature Algorithms/);
    expect(anonymous).not.toMatch(/HTTP\/1\.1 200/);
    // With web's certificate the same request is answered, by a classical-only client
    // (X25519, no ML-KEM) too.
    const svid = pki.ca.issue(WEB);
    const dir = pki.dir;
    writeFileSync(join(dir, "web.pem"), svid.chainPem);
    writeFileSync(
      join(dir, "web.key"),
      svid.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    );
    const authenticated = await sClient(
      [
        "-connect",
        target,
        "-tls1_3",
        "-brief",
        "-alpn",
        "http/1.1",
        "-groups",
        "X25519",
        "-cert",
        join(dir, "web.pem"),
        "-cert_chain",
        join(dir, "web.pem"),
        "-key",
        join(dir, "web.key"),
      ],
      request,
    );
    expect(authenticated).toMatch(/HTTP\/1\.1 200/);
    expect(authenticated).toMatch(/Server Temp Key: X25519\b/);
    // TLS 1.2 is not offered.
    const old = await sClient(["-connect", target, "-tls1_2", "-brief"], "");
    expect(old).toMatch(
      /alert protocol version|no protocols available|wrong version|unsupported protocol/i,
    );
    expect(old).not.toMatch(/Protocol version/);
  });

  it("refuses untrusted CAs, other trust domains and expired certificates at the handshake, counted", async () => {
    const target = books.addresses.inbound as string;
    const [host, port] = target.split(":") as [string, string];
    const before = metric((await admin(books, "/metrics")).body, "inbound_tls_refused_total");
    const rogue = createTrustAnchor({ trustDomain: TD }).createAuthority();
    const foreign = createTrustAnchor({ trustDomain: "other.org" }).createAuthority();
    // An intermediate of our own root whose clock is an hour behind: its 1-minute SVID
    // chains to the trusted root but expired long ago.
    const past = pki.anchor.createAuthority({ clock: { now: () => Date.now() - 3_600_000 } });
    const expired = past.issue(WEB, { ttlMs: 60_000 });
    const cases = [
      { name: "untrusted CA", svid: rogue.issue(WEB) },
      { name: "other trust domain", svid: foreign.issue("spiffe://other.org/ns/default/sa/web") },
      { name: "expired", svid: expired },
    ];
    for (const c of cases) {
      const outcome = await new Promise<string>((resolve) => {
        const s = tls.connect({
          host,
          port: Number(port),
          minVersion: "TLSv1.3",
          cert: c.svid.chainPem,
          key: c.svid.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
          ca: pki.ca.bundle.pem,
          checkServerIdentity: () => undefined,
          ALPNProtocols: ["http/1.1"],
        });
        s.on("secureConnect", () => s.write("GET / HTTP/1.1\r\nhost: books\r\n\r\n"));
        s.on("data", (d) => resolve(`data ${d.toString().split("\r\n")[0]}`));
        s.on("error", (e) => resolve(`error ${e.message}`));
        s.on("close", () => resolve("closed"));
      });
      expect(outcome, c.name).not.toMatch(/^data/);
    }
    const after = metric((await admin(books, "/metrics")).body, "inbound_tls_refused_total");
    expect(after - before).toBe(3);
  });
});
