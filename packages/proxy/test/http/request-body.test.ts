import { once } from "node:events";
import http, { type IncomingMessage } from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { RequestBody } from "../../src/http/body.js";
import { type H2Exchange, serveStream } from "../../src/http/h2-exchange.js";

// The client's request body as the proxy hands it upstream, read from real HTTP/1.1 and
// HTTP/2 clients on 127.0.0.1.

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function http1Server(handle: (req: IncomingMessage, res: http.ServerResponse) => void) {
  const server = http.createServer(handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

async function http2Server(handle: (exchange: H2Exchange) => void) {
  const server = http2.createServer();
  server.on("stream", (stream, headers, _flags, rawHeaders) =>
    serveStream(stream, headers, rawHeaders, handle),
  );
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  session.on("error", () => {});
  closers.push(() => {
    session.destroy();
    server.close();
  });
  return session;
}

/** A promise and its resolver (`Promise.withResolvers` is not in the compile target's lib). */
function promised<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function collect(body: RequestBody): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe("RequestBody", () => {
  test("reads ahead at most 64 KiB while nobody takes chunks, then delivers every byte in order", async () => {
    const sent = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff;
    const port = await http1Server(async (req, res) => {
      let readBeforePause = 0;
      const count = (chunk: Buffer) => {
        readBeforePause += chunk.length;
      };
      const body = new RequestBody(req);
      req.on("data", count);
      await once(req, "pause");
      req.off("data", count);
      const paused = req.isPaused();
      const received = await collect(body);
      res.end(JSON.stringify({ readBeforePause, paused, equal: received.equals(sent) }));
    });
    const req = http.request({ port, host: "127.0.0.1", method: "POST", path: "/" });
    req.end(sent);
    const [res] = (await once(req, "response")) as [IncomingMessage];
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const seen = JSON.parse(Buffer.concat(chunks).toString());
    expect(seen.paused).toBe(true);
    expect(seen.readBeforePause).toBeGreaterThanOrEqual(64 * 1024);
    // One socket read past the limit at most: the 1 MiB body is not buffered whole.
    expect(seen.readBeforePause).toBeLessThanOrEqual(128 * 1024);
    expect(seen.equal).toBe(true);
  });

  test("a content-length body ends at its last byte, before the HTTP/2 END_STREAM", async () => {
    const session = await http2Server(async (exchange) => {
      const received = await collect(new RequestBody(exchange));
      exchange.stream.respond({ ":status": 200 });
      exchange.stream.end(`got ${received.toString()}`);
    });
    // The client has sent every declared byte but keeps its stream open.
    const stream = session.request(
      { ":method": "POST", ":path": "/", "content-length": "5" },
      { endStream: false },
    );
    stream.write("hello");
    const [headers] = await once(stream, "response");
    expect(headers[":status"]).toBe(200);
    stream.setEncoding("utf8");
    let text = "";
    stream.on("data", (c: string) => {
      text += c;
    });
    stream.end();
    await once(stream, "end");
    expect(text).toBe("got hello");
  });

  // node:http2 ends a stream's readable side when it is cut short, exactly as when the body
  // ended: a truncated body must not be forwarded as a complete one.
  test.each([
    ["resets its stream", (stream: http2.ClientHttp2Stream) => stream.destroy()],
    ["loses its connection", (stream: http2.ClientHttp2Stream) => stream.session?.destroy()],
  ])("an HTTP/2 client that %s mid-body fails the read, never ends the body", async (_, cut) => {
    const outcome = promised<unknown>();
    const firstChunk = promised<string>();
    const session = await http2Server(async (exchange) => {
      const body = new RequestBody(exchange);
      const first = await body.next();
      firstChunk.resolve(String(first.value));
      body.next().then(
        (r) => outcome.resolve({ resolved: r }),
        (err: Error) => outcome.resolve({ rejected: err.message }),
      );
    });
    const stream = session.request({ ":method": "POST", ":path": "/" }, { endStream: false });
    stream.on("error", () => {});
    stream.write("part");
    expect(await firstChunk.promise).toBe("part");
    cut(stream);
    expect(await outcome.promise).toEqual({ rejected: expect.stringMatching(/before/) });
  });

  test("an HTTP/1.1 client hanging up mid-body rejects the pending read", async () => {
    const outcome = promised<unknown>();
    const firstChunk = promised<void>();
    const port = await http1Server(async (req) => {
      const body = new RequestBody(req);
      await body.next();
      firstChunk.resolve();
      body.next().then(
        (r) => outcome.resolve({ resolved: r }),
        (err: Error) => outcome.resolve({ rejected: err.message }),
      );
    });
    const req = http.request({ port, host: "127.0.0.1", method: "POST", path: "/" });
    req.on("error", () => {});
    req.write("part");
    await firstChunk.promise;
    req.destroy();
    expect(await outcome.promise).toEqual({ rejected: expect.any(String) });
  });

  test("return() lets go of the client's stream: a pending read fails, the rest stays unread, the server still answers", async () => {
    const port = await http1Server(async (req, res) => {
      const body = new RequestBody(req);
      await body.next();
      const pending = body.next().then(
        () => "resolved",
        (err: Error) => err.message,
      );
      await body.return();
      const state = {
        pending: await pending,
        dataListeners: req.listenerCount("data"),
        paused: req.isPaused(),
        after: await body.next(),
      };
      res.writeHead(413, { connection: "close" });
      res.end(JSON.stringify(state));
    });
    const req = http.request({ port, host: "127.0.0.1", method: "POST", path: "/" });
    req.on("error", () => {});
    req.write("first");
    const [res] = (await once(req, "response")) as [IncomingMessage];
    expect(res.statusCode).toBe(413);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    expect(JSON.parse(Buffer.concat(chunks).toString())).toEqual({
      pending: "request body: reading stopped before the body ended",
      dataListeners: 0,
      paused: true,
      after: { done: true },
    });
    req.destroy();
  });
});
