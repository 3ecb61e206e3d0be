import { once } from "node:events";
import { createServer as createHttpServer, request as httpRequest } from "node:http";
import { createServer as createH2Server, connect as h2connect } from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { createServer as createTlsServer, connect as tlsConnect } from "node:tls";
import { exportPrivateKeyPem } from "@mesh/tls-identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classifyBytes, sniffSocket } from "../../src/transport/sniff.js";
import { byteCounter, makePki, RawListener, readAll } from "./helpers.js";

let listener: RawListener;
let port: number;
beforeAll(async () => {
  listener = new RawListener();
  port = await listener.listen();
});
afterAll(() => listener.close());

function rawClient(): Promise<Socket> {
  const c = netConnect({ host: "127.0.0.1", port });
  c.setNoDelay(true);
  c.on("error", () => {});
  return once(c, "connect").then(() => c);
}

describe("sniffSocket over real sockets", () => {
  it("detects a TLS ClientHello and hands the socket to a TLS server intact", async () => {
    const { ca } = makePki();
    const svid = ca.issue("spiffe://example.org/ns/test/sa/server");
    const tlsServer = createTlsServer(
      { cert: svid.chainPem, key: exportPrivateKeyPem(svid.privateKey) },
      (s) => {
        s.end("pong");
      },
    );
    const client = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
    client.on("error", () => {});
    const sniffed = await sniffSocket(await listener.accept());
    expect(sniffed.protocol).toBe("tls");
    expect(sniffed.bytes[0]).toBe(0x16);
    tlsServer.emit("connection", sniffed.socket);
    expect((await readAll(client)).toString()).toBe("pong");
  });

  it("detects the HTTP/2 preface and serves h2 on the same socket", async () => {
    const h2 = createH2Server();
    h2.on("stream", (stream, headers) => {
      stream.respond({ ":status": 200 });
      stream.end(`h2 ${headers[":path"]}`);
    });
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const req = session.request({ ":path": "/hello" });
    const sniffed = await sniffSocket(await listener.accept());
    expect(sniffed.protocol).toBe("h2");
    h2.emit("connection", sniffed.socket);
    const body = (await readAll(req)).toString();
    expect(body).toBe("h2 /hello");
    session.close();
  });

  it("detects an HTTP/1 request line and serves HTTP/1.1 on the same socket", async () => {
    const http = createHttpServer((req, res) => res.end(`h1 ${req.method} ${req.url}`));
    const done = new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, path: "/x?y=1", method: "POST", agent: false },
        (res) => readAll(res).then((b) => resolve(b.toString()), reject),
      );
      req.on("error", reject);
      req.end("body");
    });
    const sniffed = await sniffSocket(await listener.accept());
    expect(sniffed.protocol).toBe("http1");
    http.emit("connection", sniffed.socket);
    sniffed.socket.resume(); // node:http reads the handle directly; resume replays the peeked bytes
    expect(await done).toBe("h1 POST /x?y=1");
  });

  it("copes with a client sending one byte at a time", async () => {
    const http = createHttpServer((req, res) => res.end(`slow ${req.url}`));
    const client = await rawClient();
    const server = await listener.accept();
    const seen = byteCounter(server);
    const sniffing = sniffSocket(server);
    const request = Buffer.from("GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const lineEnd = request.indexOf("\n");
    let decidedAt = -1;
    for (let i = 0; i < request.length; i++) {
      client.write(request.subarray(i, i + 1));
      await seen.until(i + 1); // each byte is its own segment on the server side
      // The sniffer pauses the socket the moment it decides.
      if (server.isPaused()) {
        decidedAt = i;
        client.write(request.subarray(i + 1));
        break;
      }
    }
    expect(decidedAt).toBe(lineEnd); // no decision before the request line is complete
    const sniffed = await sniffing;
    seen.stop();
    expect(sniffed.protocol).toBe("http1");
    http.emit("connection", sniffed.socket);
    sniffed.socket.resume();
    const response = (await readAll(client)).toString();
    expect(response).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(response).toMatch(/slow \/slow$/);
  });

  it("calls an idle client opaque after the injectable timeout and keeps the stream usable", async () => {
    const client = await rawClient();
    const sniffed = await sniffSocket(await listener.accept(), { timeoutMs: 50 });
    expect(sniffed).toMatchObject({ protocol: "opaque", reason: "timeout" });
    expect(sniffed.bytes.length).toBe(0);
    client.end("late bytes");
    expect((await readAll(sniffed.socket)).toString()).toBe("late bytes");
  });

  it("calls non-HTTP, non-TLS bytes opaque at once and puts them back", async () => {
    for (const first of [
      "*1\r\n$4\r\nPING\r\n",
      "EHLO mail.example.org\r\n",
      "\x00\x00\x00\x08\x04\xd2\x16\x2f",
    ]) {
      const client = await rawClient();
      client.end(Buffer.from(first, "latin1"));
      const sniffed = await sniffSocket(await listener.accept(), { timeoutMs: 60_000 });
      expect(sniffed).toMatchObject({ protocol: "opaque", reason: "mismatch" });
      expect((await readAll(sniffed.socket)).toString("latin1")).toBe(first);
    }
  });

  it("gives up at the byte limit", async () => {
    const client = await rawClient();
    client.write(`GET /${"a".repeat(100)}`);
    const sniffed = await sniffSocket(await listener.accept(), { maxBytes: 64 });
    expect(sniffed).toMatchObject({ protocol: "opaque", reason: "limit" });
    client.destroy();
  });

  it("reports a client that closes mid-peek as closed, with the bytes it sent", async () => {
    const client = await rawClient();
    client.end("GE");
    const sniffed = await sniffSocket(await listener.accept());
    expect(sniffed).toMatchObject({ protocol: "closed", reason: "end" });
    expect(sniffed.bytes.toString()).toBe("GE");
    expect(sniffed.socket.destroyed).toBe(true);
  });

  it("reports a reset mid-peek as closed", async () => {
    const client = await rawClient();
    client.write("\x16\x03");
    const server = await listener.accept();
    const seen = byteCounter(server);
    const sniffing = sniffSocket(server);
    await seen.until(2);
    client.resetAndDestroy();
    const sniffed = await sniffing;
    expect(sniffed.protocol).toBe("closed");
  });
});

describe("classifyBytes", () => {
  it("needs six bytes of a real ClientHello and no more", async () => {
    const client = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
    client.on("error", () => {});
    const server = await listener.accept();
    server.resume();
    const [hello] = (await once(server, "data")) as [Buffer];
    client.destroy();
    server.destroy();
    for (let n = 1; n < 6; n++) expect(classifyBytes(hello.subarray(0, n))).toBeUndefined();
    expect(classifyBytes(hello.subarray(0, 6))).toBe("tls");
    expect(classifyBytes(hello)).toBe("tls");
  });

  it.each([
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2"],
    ["PRI * HTTP/2.0\r\n", undefined],
    ["PUT /a HTTP/1.1\r\n", "http1"],
    ["GET http://example.org/ HTTP/1.0\n", "http1"],
    ["OPTIONS * HTTP/1.1\r\n", "http1"],
    ["GET / HTTP/2.0\r\n", "opaque"],
    ["GET / HTTP/1.1X", "opaque"],
    ["GET  / HTTP/1.1\r\n", "opaque"],
    ["G\x00T", "opaque"],
    ["\x16\x03\x01\x00\x05\x02", "opaque"],
    ["\x16\x02", "opaque"],
    ["\x16\x03\x09", "opaque"],
    ["", undefined],
    ["GET /path-not-finished", undefined],
  ])("%j → %s", (text, expected) => {
    expect(classifyBytes(Buffer.from(text, "latin1"))).toBe(expected);
  });
});
