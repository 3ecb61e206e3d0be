import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createH2Server } from "node:http2";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";
import {
  clientTlsOptions,
  createIssuer,
  exportPrivateKeyPem,
  type IdentityMaterial,
  matchExact,
  staticTokenAuthenticator,
} from "@mesh/tls-identity";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setClientIdHeader } from "../../src/transport/mtls/client-id.js";
import { MeshTlsError } from "../../src/transport/mtls/errors.js";
import { createIdentity } from "../../src/transport/mtls/identity.js";
import { InboundTls, OPAQUE_ALPN, type TerminatedTls } from "../../src/transport/mtls/inbound.js";
import { connectMeshTls, meshConnector } from "../../src/transport/mtls/outbound.js";
import { sniffSocket } from "../../src/transport/sniff.js";
import { forwardTcp, type TcpForwardResult } from "../../src/transport/tcp-forward.js";
import { encodeTransportHeader } from "../../src/transport/transport-header/header.js";
import { readTransportHeader } from "../../src/transport/transport-header/read.js";
import { makePki, RawListener, readAll } from "./helpers.js";

const BOOKS = "spiffe://example.org/ns/default/sa/books";
const WEB = "spiffe://example.org/ns/default/sa/web";

const pki = makePki();
const booksMat = pki.material(BOOKS);
const webMat = pki.material(WEB);

/** An inbound listener: sniff → terminate mTLS; hands out each outcome. */
class InboundHarness {
  readonly raw = new RawListener();
  readonly tls: InboundTls;
  constructor(material: IdentityMaterial, options?: ConstructorParameters<typeof InboundTls>[1]) {
    this.tls = new InboundTls(material, options);
  }
  async next(): Promise<TerminatedTls> {
    const sniffed = await sniffSocket(await this.raw.accept());
    expect(sniffed.protocol).toBe("tls");
    return this.tls.terminate(sniffed.socket);
  }
}

function connectClient(port: number, options: ConnectionOptions): TLSSocket {
  const s = tlsConnect({ host: "127.0.0.1", port, ...options });
  s.on("error", () => {});
  return s;
}

describe("InboundTls", () => {
  const inbound = new InboundHarness(booksMat);
  let port: number;
  beforeAll(async () => {
    port = await inbound.raw.listen();
  });
  afterAll(() => inbound.raw.close());

  it("accepts a meshed client, exposes its verified SPIFFE ID and the ALPN", async () => {
    const client = connectClient(port, {
      ...clientTlsOptions(webMat, { expect: BOOKS }),
      ALPNProtocols: ["h2"],
    });
    const t = await inbound.next();
    expect(t.peerId.toString()).toBe(WEB);
    expect(t.alpn).toBe("h2");
    expect(t.socket.getProtocol()).toBe("TLSv1.3");
    t.socket.end("hello");
    expect((await readAll(client)).toString()).toBe("hello");
  });

  it("refuses a client without a certificate", async () => {
    connectClient(port, {
      ca: booksMat.bundle.pem,
      checkServerIdentity: () => undefined,
      minVersion: "TLSv1.3",
    });
    const err = await inbound.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeshTlsError);
    expect(err).toMatchObject({
      code: "MESH_PROXY_TLS_REFUSED",
      reason: "client not authenticated",
    });
    expect((err as Error).message).toMatch(/client presented no certificate/);
  });

  it("refuses a client whose certificate comes from an untrusted CA", async () => {
    const rogue = pki.material(WEB, pki.rogue);
    connectClient(port, {
      cert: rogue.svid.chainPem,
      key: exportPrivateKeyPem(rogue.svid.privateKey),
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
    });
    const err = await inbound.next().catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "MESH_PROXY_TLS_REFUSED",
      reason: "client not authenticated",
    });
    expect((err as Error).message).toMatch(/not verified by the trust bundle/);
  });

  it("refuses TLS 1.2", async () => {
    connectClient(port, {
      cert: webMat.svid.chainPem,
      key: exportPrivateKeyPem(webMat.svid.privateKey),
      rejectUnauthorized: false,
      maxVersion: "TLSv1.2",
    });
    const err = await inbound.next().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "MESH_PROXY_TLS_REFUSED", reason: "tls handshake failed" });
  });

  it("applies an optional authorizer at the handshake", async () => {
    const strict = new InboundHarness(booksMat, { authorize: matchExact(BOOKS) });
    const p = await strict.raw.listen();
    connectClient(p, clientTlsOptions(webMat, { expect: BOOKS }));
    const err = await strict.next().catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "MESH_PROXY_TLS_REFUSED",
      reason: "client identity not accepted",
      peerId: WEB,
    });
    await strict.raw.close();
  });
});

describe("meshConnector (undici) against InboundTls + HTTP/2", () => {
  const inbound = new InboundHarness(booksMat);
  const h2 = createH2Server();
  let port: number;
  beforeAll(async () => {
    port = await inbound.raw.listen();
    // The verified ID belongs to the connection: remember it per HTTP/2 session and set
    // it (replacing any forged copy) on every request of that session.
    const peers = new WeakMap<object, string>();
    let connecting: string | undefined;
    h2.on("session", (session) => peers.set(session, connecting as string));
    h2.on("stream", (stream, headers) => {
      setClientIdHeader(headers, peers.get(stream.session as object));
      stream.respond({ ":status": 200 });
      stream.end(String(headers["mesh-client-id"]));
    });
    void (async () => {
      for (;;) {
        const t = await inbound.next().catch(() => undefined);
        if (!t) continue;
        connecting = t.peerId.toString();
        h2.emit("connection", t.socket); // emits "session" synchronously
      }
    })();
  });
  afterAll(() => inbound.raw.close());

  it("speaks h2 over mTLS and the app sees the verified client ID, not a forged one", async () => {
    const agent = new Agent({ connect: meshConnector(webMat, { expect: BOOKS }), allowH2: true });
    const res = await request(`https://127.0.0.1:${port}/books`, {
      dispatcher: agent,
      headers: { "mesh-client-id": "spiffe://evil.org/forged" },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe(WEB);
    await agent.close();
  });

  it("fails with a clear identity-mismatch error when the server is someone else", async () => {
    const expectOther = "spiffe://example.org/ns/default/sa/authors";
    const agent = new Agent({
      connect: meshConnector(webMat, { expect: () => expectOther }),
      allowH2: true,
    });
    const err = await request(`https://127.0.0.1:${port}/`, { dispatcher: agent }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MeshTlsError);
    expect(err).toMatchObject({
      code: "MESH_PROXY_IDENTITY_MISMATCH",
      reason: "identity mismatch",
      peerId: BOOKS,
    });
    expect((err as Error).message).toBe(
      `mTLS to 127.0.0.1:${port}: server identity ${BOOKS} is not accepted by ${expectOther}`,
    );
    await agent.close();
  });

  it("fails with untrusted-certificate when the server's CA is not in the bundle", async () => {
    const rogueInbound = new InboundHarness(pki.material(BOOKS, pki.rogue));
    const p = await rogueInbound.raw.listen();
    void rogueInbound.next().catch(() => undefined);
    const agent = new Agent({ connect: meshConnector(webMat, { expect: BOOKS }), allowH2: true });
    const err = await request(`https://127.0.0.1:${p}/`, { dispatcher: agent }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: "MESH_PROXY_TLS_UNTRUSTED",
      reason: "untrusted server certificate",
    });
    await agent.close();
    await rogueInbound.raw.close();
  });
});

describe("opaque TCP through the transport header and an mTLS pair", () => {
  it("carries a real TCP echo through two proxies and counts bytes on both", async () => {
    const echo = createNetServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    echo.listen(0, "127.0.0.1");
    await once(echo, "listening");
    const echoPort = (echo.address() as AddressInfo).port;

    // Inbound proxy: sniff TLS → mTLS → header → connect to the target port → forward.
    const inbound = new InboundHarness(booksMat);
    const inboundPort = await inbound.raw.listen();
    const inboundDone = (async (): Promise<[TcpForwardResult, string, number]> => {
      const t = await inbound.next();
      expect(t.alpn).toBe(OPAQUE_ALPN);
      const header = await readTransportHeader(t.socket);
      const upstream = (await import("node:net")).connect({ host: "127.0.0.1", port: header.port });
      await once(upstream, "connect");
      return [await forwardTcp(t.socket, upstream).done, t.peerId.toString(), header.port];
    })();

    // Outbound proxy: accept the app's connection → mTLS to the peer → header → forward.
    const outbound = new RawListener();
    const outboundPort = await outbound.listen();
    const outboundDone = (async () => {
      const app = await outbound.accept();
      const peer = await connectMeshTls(webMat, {
        host: "127.0.0.1",
        port: inboundPort,
        expect: BOOKS,
      });
      peer.write(encodeTransportHeader({ port: echoPort }));
      return forwardTcp(app, peer).done;
    })();

    const app = (await import("node:net")).connect({ host: "127.0.0.1", port: outboundPort });
    const payload = Buffer.alloc(256 * 1024, 0x2a);
    app.end(payload);
    const echoed = await readAll(app);
    expect(echoed.equals(payload)).toBe(true);

    const out = await outboundDone;
    const [inb, clientId, targetPort] = await inboundDone;
    expect(out).toMatchObject({
      reason: "closed",
      bytesRead: payload.length,
      bytesWritten: payload.length,
    });
    expect(inb).toMatchObject({
      reason: "closed",
      bytesRead: payload.length,
      bytesWritten: payload.length,
    });
    expect(clientId).toBe(WEB);
    expect(targetPort).toBe(echoPort);
    await inbound.raw.close();
    await outbound.close();
    echo.close();
  });

  it("refuses a peer with the wrong identity before any byte is sent", async () => {
    const inbound = new InboundHarness(booksMat);
    const p = await inbound.raw.listen();
    void inbound.next().catch(() => undefined);
    const err = await connectMeshTls(webMat, { host: "127.0.0.1", port: p, expect: WEB }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "MESH_PROXY_IDENTITY_MISMATCH" });
    await inbound.raw.close();
  });
});

describe("createIdentity", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "mesh-security-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("gets an SVID from the issuer, is ready, and rotates for new connections only", async () => {
    const issuer = createIssuer({
      ca: pki.ca,
      authenticator: staticTokenAuthenticator({ "books-token": BOOKS }),
    });
    const url = await issuer.listen(0, "127.0.0.1");
    await writeFile(join(dir, "token"), "books-token\n");
    const identity = await createIdentity(
      { trustDomain: "example.org", id: BOOKS, issuer: { url, tokenFile: "token" } },
      { baseDir: dir },
    );
    expect(identity.isReady()).toBe(false);
    await identity.ready();
    expect(identity.isReady()).toBe(true);
    expect(identity.refreshes).toBe(1);
    expect(identity.expiresAt).toBe(identity.svid.notAfter);

    const inbound = new InboundHarness(identity.source);
    const port = await inbound.raw.listen();
    const first = connectClient(port, clientTlsOptions(webMat, { expect: BOOKS }));
    const t1 = await inbound.next();
    const serial1 = first.getPeerX509Certificate()?.serialNumber;

    await identity.source.refreshNow();
    expect(identity.refreshes).toBe(2);
    const second = connectClient(port, clientTlsOptions(webMat, { expect: BOOKS }));
    const t2 = await inbound.next();
    const serial2 = second.getPeerX509Certificate()?.serialNumber;
    expect(serial2).not.toBe(serial1);

    // The connection made before the rotation still works.
    t1.socket.end("still here");
    expect((await readAll(first)).toString()).toBe("still here");
    t2.socket.destroy();
    identity.close();
    inbound.tls.close();
    await inbound.raw.close();
    await issuer.close();
  });

  it("loads watched files and is not ready with an SVID for another ID", async () => {
    const svid = pki.ca.issue(WEB);
    await writeFile(join(dir, "svid.pem"), svid.chainPem);
    await writeFile(join(dir, "key.pem"), exportPrivateKeyPem(svid.privateKey));
    await writeFile(join(dir, "bundle.pem"), pki.ca.bundle.pem);
    const files = { cert: "svid.pem", key: "key.pem", bundle: "bundle.pem" };
    const ok = await createIdentity(
      { trustDomain: "example.org", id: WEB, files },
      { baseDir: dir },
    );
    await ok.ready();
    expect(ok.isReady()).toBe(true);
    const wrong = await createIdentity(
      { trustDomain: "example.org", id: BOOKS, files },
      { baseDir: dir },
    );
    await wrong.ready();
    expect(wrong.isReady()).toBe(false);
    expect(wrong.lastError?.message).toBe(`the SVID is for ${WEB}, but identity.id is ${BOOKS}`);
    ok.close();
    wrong.close();
  });

  it("names the bad field", async () => {
    await expect(
      createIdentity({ trustDomain: "example.org", id: "spiffe://other.org/x", files: {} }),
    ).rejects.toThrow(
      /^identity\.id: expected a SPIFFE ID in example\.org, got "spiffe:\/\/other\.org\/x"/,
    );
    await expect(createIdentity({ trustDomain: "example.org", id: WEB })).rejects.toThrow(
      "identity: expected exactly one of issuer, files or workloadApi, got none",
    );
    await expect(
      createIdentity({ trustDomain: "example.org", id: WEB, workloadApi: { socket: "tcp://x:1" } }),
    ).rejects.toThrow(
      'identity.workloadApi.socket: expected a Unix socket path or unix:// URL (tcp is not supported), got "tcp://x:1"',
    );
    await expect(
      createIdentity({ trustDomain: "example.org", id: WEB, workloadApi: {} }),
    ).rejects.toThrow("identity.workloadApi.socket: expected a non-empty string, got nothing");
    await expect(
      createIdentity({
        trustDomain: "example.org",
        id: WEB,
        issuer: { url: "ftp://x", tokenFile: "t" },
      }),
    ).rejects.toThrow('identity.issuer.url: expected an http(s):// URL, got "ftp://x"');
    await expect(
      createIdentity(
        {
          trustDomain: "example.org",
          id: WEB,
          issuer: { url: "https://127.0.0.1:1", tokenFile: "t", bundleFile: "nope.pem" },
        },
        { baseDir: dir },
      ),
    ).rejects.toMatchObject({ code: "MESH_PROXY_IDENTITY_SETUP" });
  });
});
