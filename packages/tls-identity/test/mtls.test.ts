import { once } from "node:events";
import { createSecureServer as createHttp2Server, connect as h2connect } from "node:http2";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import {
  type ConnectionOptions,
  connect,
  createServer,
  type Server,
  type TLSSocket,
} from "node:tls";
import { afterEach, describe, expect, test } from "vitest";
import {
  clientTlsOptions,
  createTrustAnchor,
  type IdentityMaterial,
  matchPath,
  matchTrustDomain,
  PeerIdentityError,
  peerSpiffeId,
  secureServer,
  serverTlsOptions,
} from "../src/index.js";
import { fakeClock, listen } from "./helpers.js";
import { anchor, bundle, CLIENT_ID, ca, client, SERVER_ID, server } from "./mtls-fixtures.js";

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A TLS echo server that answers with the client's SPIFFE ID. */
async function startServer(
  material: IdentityMaterial,
  authorize = matchTrustDomain("prod.example"),
) {
  const srv: Server = createServer(serverTlsOptions(material), (s: TLSSocket) =>
    s.end(`hello ${peerSpiffeId(s)}`),
  );
  const refused: Error[] = [];
  srv.on("tlsClientError", (e) => refused.push(e));
  secureServer(srv, material, { authorize });
  const port = await listen(srv);
  closers.push(() => srv.close());
  const nextRefusal = async () =>
    refused.shift() ?? ((await once(srv, "tlsClientError"))[0] as Error);
  return { port, nextRefusal };
}

/** Connects and resolves with what the server said, or the client-side error. */
function talk(port: number, options: ConnectionOptions): Promise<{ data: string; error?: Error }> {
  return new Promise((resolve) => {
    let data = "";
    const s = connect({ host: "127.0.0.1", port, ...options });
    s.setEncoding("utf8");
    s.on("data", (d) => {
      data += d;
    });
    s.on("error", (error) => resolve({ data, error }));
    s.on("close", () => resolve({ data }));
  });
}

describe("mTLS over real sockets", () => {
  test("the right identity connects, TLS 1.3 only, both sides see the peer's SPIFFE ID", async () => {
    const { port } = await startServer(server);
    let seenServer = "";
    const res = await new Promise<{ data: string; version: string | null }>((resolve, reject) => {
      let data = "";
      const s = connect(
        { host: "127.0.0.1", port, ...clientTlsOptions(client, { expect: SERVER_ID }) },
        () => {
          seenServer = String(peerSpiffeId(s));
        },
      );
      s.on("data", (d) => {
        data += d;
      });
      s.on("error", reject);
      s.on("end", () => resolve({ data, version: s.getProtocol() }));
    });
    expect(res.data).toBe(`hello ${CLIENT_ID}`);
    expect(res.version).toBe("TLSv1.3");
    expect(seenServer).toBe(SERVER_ID);
  });

  test("TLS 1.2 clients are refused", async () => {
    const { port, nextRefusal } = await startServer(server);
    const opts = clientTlsOptions(client, { expect: SERVER_ID });
    const res = await talk(port, {
      ...opts,
      secureContext: undefined,
      cert: client.svid.chainPem,
      key: client.svid.privateKey.export({ type: "pkcs8", format: "pem" }),
      ca: bundle.pem,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
    });
    expect(res.error?.message).toMatch(/protocol version|alert/i);
    expect((await nextRefusal()).message).toMatch(/unsupported protocol/i);
  });

  test("a client from another trust domain is refused by the authorizer", async () => {
    const { port, nextRefusal } = await startServer(server);
    // Same CA hierarchy trusts it at the chain level; the authorizer is what refuses.
    const otherTdAnchor = createTrustAnchor({ trustDomain: "staging.example" });
    const other = {
      svid: otherTdAnchor.createAuthority().issue("spiffe://staging.example/ns/prod/sa/web"),
      bundle: bundle.with(otherTdAnchor.certificate),
    };
    const serverTrustingBoth = await startServer({ svid: server.svid, bundle: other.bundle });
    const res = await talk(serverTrustingBoth.port, clientTlsOptions(other, { expect: SERVER_ID }));
    expect(res.data).toBe("");
    const err = await serverTrustingBoth.nextRefusal();
    expect(err).toBeInstanceOf(PeerIdentityError);
    expect((err as PeerIdentityError).code).toBe("MESH_IDENTITY_PEER_REJECTED");
    expect(err.message).toBe(
      "client identity spiffe://staging.example/ns/prod/sa/web is not accepted by the authorizer",
    );
    void port;
    void nextRefusal;
  });

  test("a client outside the allowed path pattern is refused", async () => {
    const { port, nextRefusal } = await startServer(server, matchPath("/ns/payments/*"));
    const res = await talk(port, clientTlsOptions(client, { expect: SERVER_ID }));
    expect(res.data).toBe("");
    expect((await nextRefusal()).message).toMatch(
      /client identity spiffe:\/\/prod\.example\/ns\/prod\/sa\/web is not accepted/,
    );
  });

  test("an expired client certificate is refused by the server", async () => {
    const { port, nextRefusal } = await startServer(server);
    const past = fakeClock(Date.now() - 48 * 3600_000);
    const oldRoot = createTrustAnchor({ trustDomain: "prod.example", clock: past });
    const expired = {
      svid: oldRoot.createAuthority().issue(CLIENT_ID, { ttlMs: 3600_000 }),
      bundle,
    };
    const srv2 = await startServer({ svid: server.svid, bundle: bundle.with(oldRoot.certificate) });
    const res = await talk(
      srv2.port,
      clientTlsOptions({ svid: expired.svid, bundle }, { expect: SERVER_ID }),
    );
    expect(res.data).toBe("");
    expect((await srv2.nextRefusal()).message).toBe(
      "client certificate was not verified by the trust bundle: CERT_HAS_EXPIRED",
    );
    void port;
    void nextRefusal;
  });

  test("a client without a certificate is refused by the server", async () => {
    const { port, nextRefusal } = await startServer(server);
    const res = await talk(port, {
      ca: bundle.pem,
      minVersion: "TLSv1.3",
      checkServerIdentity: () => undefined,
    });
    expect(res.data).toBe("");
    expect(res.error?.message ?? "").toMatch(/certificate required|ECONNRESET|^$/);
    expect((await nextRefusal()).message).toBe("client presented no certificate");
  });

  test("a client from an untrusted CA is refused by the server", async () => {
    const { port, nextRefusal } = await startServer(server);
    const rogue = createTrustAnchor({ trustDomain: "prod.example" });
    const rogueClient = { svid: rogue.createAuthority().issue(CLIENT_ID), bundle };
    const res = await talk(port, clientTlsOptions(rogueClient, { expect: SERVER_ID }));
    expect(res.data).toBe("");
    expect((await nextRefusal()).message).toBe(
      "client certificate was not verified by the trust bundle: UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    );
  });

  test("a server with an unexpected SPIFFE ID is refused by the client", async () => {
    const { port } = await startServer(server);
    const res = await talk(
      port,
      clientTlsOptions(client, { expect: "spiffe://prod.example/ns/prod/sa/db" }),
    );
    expect(res.error).toBeInstanceOf(PeerIdentityError);
    expect(res.error?.message).toBe(
      "server identity spiffe://prod.example/ns/prod/sa/api is not accepted by spiffe://prod.example/ns/prod/sa/db",
    );
  });

  test("a server from an untrusted CA is refused by the client", async () => {
    const rogue = createTrustAnchor({ trustDomain: "prod.example" });
    const rogueServer = {
      svid: rogue.createAuthority().issue(SERVER_ID),
      bundle: rogue.bundle.with(anchor.certificate),
    };
    const { port } = await startServer(rogueServer);
    const res = await talk(port, clientTlsOptions(client, { expect: SERVER_ID }));
    expect(res.error?.message).toMatch(/unable to get local issuer certificate/);
  });

  test("works with node:https and node:http2 servers", async () => {
    const https = createHttpsServer(serverTlsOptions(server), (req, res) =>
      res.end(`h1 ${peerSpiffeId(req.socket as TLSSocket)}`),
    );
    secureServer(https, server, { authorize: matchTrustDomain("prod.example") });
    const p1 = await listen(https);
    closers.push(() => https.close());
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: p1,
          path: "/",
          agent: false,
          ...clientTlsOptions(client, { expect: SERVER_ID }),
        },
        (res) => {
          let d = "";
          res.on("data", (c) => {
            d += c;
          });
          res.on("end", () => resolve(d));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(body).toBe(`h1 ${CLIENT_ID}`);

    const h2 = createHttp2Server(serverTlsOptions(server), (req, res) =>
      res.end(`h2 ${peerSpiffeId(req.socket as unknown as TLSSocket)}`),
    );
    const refused: Error[] = [];
    h2.on("tlsClientError", (e) => refused.push(e));
    secureServer(h2, server, { authorize: matchPath("/ns/prod/sa/web") });
    const p2 = await listen(h2);
    closers.push(() => h2.close());
    const h2get = (material: IdentityMaterial) =>
      new Promise<string>((resolve, reject) => {
        const session = h2connect(`https://127.0.0.1:${p2}`, {
          ...clientTlsOptions(material, { expect: SERVER_ID }),
        });
        session.on("error", reject);
        const req = session.request({ ":path": "/" });
        let d = "";
        req.on("data", (c) => {
          d += c;
        });
        req.on("end", () => {
          session.close();
          resolve(d);
        });
        req.on("error", reject);
      });
    expect(await h2get(client)).toBe(`h2 ${CLIENT_ID}`);
    const other = { svid: ca.issue("spiffe://prod.example/ns/prod/sa/other"), bundle };
    // The session dies before any response: the request errors or ends empty.
    expect(await h2get(other).catch(() => "")).toBe("");
    expect(refused[0]?.message).toMatch(/sa\/other is not accepted/);
  });
});
