import { createHash } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import { once } from "node:events";
import type { IncomingHttpHeaders } from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { Readable } from "node:stream";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import type { Dispatcher } from "undici";
import { afterEach, describe, expect, test } from "vitest";
import { Http2Client } from "../src/dispatcher/h2-client.js";

interface Outcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders;
}

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function h2Server(
  onStream: (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    rawHeaders: string[],
  ) => void,
  settings: http2.Settings = {},
): Promise<{ origin: string; server: http2.Http2Server; sessions: () => number }> {
  const server = http2.createServer({ settings });
  let sessions = 0;
  server.on("session", () => sessions++);
  server.on("stream", (stream, headers, _flags, rawHeaders) => {
    stream.on("error", () => undefined); // resets are part of some tests
    onStream(stream, headers, rawHeaders);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        // sessions may still be open: close() waits for them
        for (const s of openSessions) s.destroy();
      }),
  );
  const openSessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    openSessions.add(s);
    s.on("close", () => openSessions.delete(s));
  });
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, server, sessions: () => sessions };
}

function client(origin: string): Http2Client {
  const c = new Http2Client(origin);
  closers.push(() => c.destroy());
  return c;
}

/** Dispatches and collects the whole response; `hooks` may pause/resume or abort. */
function send(
  d: Dispatcher,
  opts: Partial<Dispatcher.DispatchOptions> = {},
  hooks: {
    onStart?: (c: Dispatcher.DispatchController) => void;
    onData?: (c: Dispatcher.DispatchController) => void;
  } = {},
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    d.dispatch(
      { origin: "http://unused", path: "/", method: "GET", ...opts } as Dispatcher.DispatchOptions,
      {
        onRequestStart() {},
        onResponseStart(c, s, h) {
          status = s;
          headers = h;
          hooks.onStart?.(c);
        },
        onResponseData(c, chunk) {
          chunks.push(chunk);
          hooks.onData?.(c);
        },
        onResponseEnd(_c, trailers) {
          resolve({ status, headers, body: Buffer.concat(chunks), trailers });
        },
        onResponseError(_c, err) {
          reject(err);
        },
      },
    );
  });
}

function grpcLikeReply(stream: http2.ServerHttp2Stream, body: Buffer): void {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.end(body);
}

describe("Http2Client", () => {
  test("options are validated, each problem named (an unknown option gets a hint)", () => {
    expect(() => new Http2Client("http://127.0.0.1:1", { timeout: 5 } as never)).toThrow(
      'http2Client: unknown option "timeout" (did you mean "connectTimeout"?)',
    );
    expect(() => new Http2Client("http://127.0.0.1:1", { streamWindow: 10 })).toThrow(
      "http2Client.streamWindow: expected an integer in 65535..2147483647, got 10",
    );
    expect(() => new Http2Client("http://127.0.0.1:1", { connectTimeout: -1 })).toThrow(
      /^http2Client\.connectTimeout: expected a duration/,
    );
    expect(
      () => new Http2Client("http://127.0.0.1:1", { keepAlive: { interval: 1 } } as never),
    ).toThrow(/^http2Client\.keepAlive: unknown option "interval"/);
    expect(() => new Http2Client("http://127.0.0.1:1", { connect: 5 } as never)).toThrow(
      "http2Client.connect: expected a connector function or node:tls options, got number",
    );
    // Nothing of the client's bookkeeping is public.
    const c = new Http2Client("http://127.0.0.1:1", { keepAlive: false });
    for (const internal of ["done", "requeue", "retire"]) expect(internal in c).toBe(false);
  });

  test("a paused response keeps DATA that arrived before its trailers (undici 8.13 drops it)", async () => {
    const { origin } = await h2Server((stream, headers) => {
      stream.resume();
      grpcLikeReply(stream, Buffer.from(`reply to ${headers[":path"]}`));
    });
    const c = client(origin);
    let paused!: Dispatcher.DispatchController;
    const first = send(
      c,
      { path: "/first" },
      {
        onStart: (ctl) => {
          paused = ctl;
          ctl.pause();
        },
      },
    );
    // A second exchange on the same connection completes only after the first one's DATA
    // and trailers were read off the socket: then the first is resumed.
    const second = await send(c, { path: "/second" });
    expect(second.body.toString()).toBe("reply to /second");
    paused.resume();
    const r = await first;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("reply to /first");
    expect(r.trailers["grpc-status"]).toBe("0");
    expect(r.headers[":status"]).toBeUndefined();
  });

  test("streams request and response bodies with back-pressure, byte for byte", async () => {
    const download = Buffer.alloc(4 << 20);
    for (let i = 0; i < download.length; i++) download[i] = (i * 31) & 0xff;
    const { origin } = await h2Server((stream) => {
      const hash = createHash("sha256");
      let n = 0;
      stream.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        n += chunk.length;
      });
      stream.on("end", () => {
        stream.respond({ ":status": 200, "x-upload": `${n}:${hash.digest("hex")}` });
        stream.end(download);
      });
    });
    const c = client(origin);
    const upload = Buffer.alloc(3 << 20, 7);
    const parts = Array.from({ length: 48 }, (_, i) => upload.subarray(i << 16, (i + 1) << 16));
    let pauses = 0;
    const r = await send(
      c,
      { method: "POST", body: Readable.from(parts) },
      {
        // pause after every chunk and resume on the next turn: the consumer is slow
        onData: (ctl) => {
          pauses++;
          ctl.pause();
          setImmediate(() => ctl.resume());
        },
      },
    );
    expect(r.headers["x-upload"]).toBe(
      `${upload.length}:${createHash("sha256").update(upload).digest("hex")}`,
    );
    expect(r.body.equals(download)).toBe(true);
    expect(pauses).toBeGreaterThan(1);
  });

  test("maps headers: host becomes :authority, hop-by-hop headers are dropped, te only as trailers", async () => {
    let seen: http2.IncomingHttpHeaders = {};
    const { origin } = await h2Server((stream, headers) => {
      seen = headers;
      stream.respond({ ":status": 204 });
      stream.end();
    });
    const c = client(origin);
    const r = await send(c, {
      method: "GET",
      path: "/x?y=1",
      headers: ["host", "books.svc:8080", "connection", "keep-alive", "te", "trailers", "x-a", "1"],
    });
    expect(r.status).toBe(204);
    expect(seen[":authority"]).toBe("books.svc:8080");
    expect(seen[":path"]).toBe("/x?y=1");
    expect(seen[":scheme"]).toBe("http");
    expect(seen.te).toBe("trailers");
    expect(seen["x-a"]).toBe("1");
    expect(seen.connection).toBeUndefined();
  });

  test("multi-value headers arrive as separate field lines in order, in every header form undici accepts", async () => {
    const seen: string[][] = [];
    const { origin } = await h2Server((stream, _headers, raw) => {
      seen.push(raw);
      stream.respond({ ":status": 204 });
      stream.end();
    });
    const c = client(origin);
    const port = new URL(origin).host;
    const pairs = (raw: string[]) => {
      const out: string[] = [];
      for (let i = 0; i < raw.length; i += 2) out.push(`${raw[i]}: ${raw[i + 1]}`);
      return out;
    };
    // Flat list: repeated names, mixed case, a null value dropped, no host (the default).
    await send(c, {
      method: "POST",
      path: "/a",
      body: "x",
      headers: ["X-Multi", "1", "cookie", "a=1", "x-multi", "2", "cookie", "b=2", "x-gone", null],
    } as unknown as Partial<Dispatcher.DispatchOptions>);
    // Object with array values, and a host that becomes :authority.
    await send(c, {
      path: "/b",
      headers: { "x-list": ["p", "q"], Host: "books.svc", "Keep-Alive": "1", te: "gzip" },
    });
    // Map-like iterable.
    await send(c, {
      path: "/c",
      headers: new Map([["x-map", "m"]]) as unknown as Record<string, string>,
    });
    expect(seen).toHaveLength(3);
    expect(pairs(seen[0] as string[])).toEqual([
      ":method: POST",
      ":path: /a",
      ":scheme: http",
      `:authority: ${port}`,
      "x-multi: 1",
      "cookie: a=1",
      "x-multi: 2",
      "cookie: b=2",
    ]);
    expect(pairs(seen[1] as string[])).toEqual([
      ":method: GET",
      ":path: /b",
      ":scheme: http",
      ":authority: books.svc",
      "x-list: p",
      "x-list: q",
    ]);
    expect(pairs(seen[2] as string[])).toEqual([
      ":method: GET",
      ":path: /c",
      ":scheme: http",
      `:authority: ${port}`,
      "x-map: m",
    ]);
  });

  test("after the peer's GOAWAY, streams in flight finish and new requests use a new connection", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let wentAway!: () => void;
    const goneAway = new Promise<void>((r) => (wentAway = r));
    const { origin, sessions } = await h2Server((stream, headers) => {
      stream.resume();
      if (headers[":path"] === "/slow") {
        stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR);
        wentAway();
        void held.then(() => grpcLikeReply(stream, Buffer.from("slow")));
      } else grpcLikeReply(stream, Buffer.from("fast"));
    });
    const c = client(origin);
    const slow = send(c, { path: "/slow" });
    await goneAway;
    // Sent once, after the GOAWAY left the server: it must succeed on a second connection
    // (directly, or re-sent if it raced the GOAWAY and was refused) while /slow is held.
    const fast = await send(c, { path: "/fast" });
    expect(fast.body.toString()).toBe("fast");
    expect(sessions()).toBe(2);
    release();
    expect((await slow).body.toString()).toBe("slow");
  });

  test("a stream refused before processing is sent again on a new connection", async () => {
    let refused = 0;
    const { origin, sessions } = await h2Server((stream) => {
      if (refused === 0) {
        refused++;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR);
        return;
      }
      stream.resume();
      stream.on("end", () => grpcLikeReply(stream, Buffer.from("second try")));
    });
    const c = client(origin);
    const r = await send(c, { method: "POST", body: Buffer.from("replayable") });
    expect(r.body.toString()).toBe("second try");
    expect(refused).toBe(1);
    expect(sessions()).toBe(2);
  });

  test("failures: connection refused, reset mid-response, abort by the handler", async () => {
    const dead = new Http2Client("http://127.0.0.1:1");
    closers.push(() => dead.destroy());
    await expect(send(dead)).rejects.toMatchObject({ code: "ECONNREFUSED" });

    let cancelled!: () => void;
    const sawCancel = new Promise<void>((r) => (cancelled = r));
    const { origin } = await h2Server((stream, headers) => {
      stream.resume();
      stream.respond({ ":status": 200 });
      stream.write("partial");
      if (headers[":path"] === "/reset") setImmediate(() => stream.session?.destroy());
      else stream.on("close", () => stream.rstCode === 8 && cancelled());
    });
    const c = client(origin);
    await expect(send(client(origin), { path: "/reset" })).rejects.toMatchObject({
      code: "ERR_HTTP2_STREAM_ERROR",
    });
    const reason = new Error("client went away");
    await expect(send(c, { path: "/abort" }, { onData: (ctl) => ctl.abort(reason) })).rejects.toBe(
      reason,
    );
    await sawCancel; // the server saw RST_STREAM(CANCEL)
  });

  test("close() lets requests in flight finish, then refuses new ones", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const arrivedP = new Promise<void>((r) => (arrived = r));
    const { origin } = await h2Server((stream) => {
      stream.resume();
      arrived();
      void held.then(() => grpcLikeReply(stream, Buffer.from("done")));
    });
    const c = client(origin);
    const inflight = send(c);
    await arrivedP;
    const closed = c.close();
    await expect(send(c)).rejects.toMatchObject({ code: "UND_ERR_CLOSED" });
    release();
    expect((await inflight).body.toString()).toBe("done");
    await closed;
  });

  test("destroy() fails requests in flight and closes their connection at once", async () => {
    let serverStreamClosed!: () => void;
    const closedP = new Promise<void>((r) => (serverStreamClosed = r));
    let arrived!: () => void;
    const arrivedP = new Promise<void>((r) => (arrived = r));
    const { origin } = await h2Server((stream) => {
      stream.on("close", () => serverStreamClosed());
      stream.respond({ ":status": 200 });
      stream.write("half"); // and never ends
      arrived();
    });
    const c = client(origin);
    const inflight = send(c);
    await arrivedP;
    await c.destroy();
    await expect(inflight).rejects.toMatchObject({ code: "UND_ERR_CLOSED" });
    await closedP; // the held stream did not outlive the client
  });

  test("works as the dispatcher of Node's global fetch (legacy handler API)", async () => {
    const { origin } = await h2Server((stream) => grpcLikeReply(stream, Buffer.from("via fetch")));
    const res = await fetch(origin, { dispatcher: client(origin) } as RequestInit);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("via fetch");
  });

  test("close() right after dispatch still sends the queued request; upgrades are refused", async () => {
    const { origin } = await h2Server((stream) => {
      stream.resume();
      grpcLikeReply(stream, Buffer.from("queued"));
    });
    const c = client(origin);
    const queued = send(c); // the connection is still being opened
    const closed = c.close();
    expect((await queued).body.toString()).toBe("queued");
    await closed;
    const other = client(origin);
    await expect(send(other, { upgrade: "websocket" })).rejects.toMatchObject({
      code: "ERR_HTTP2_STREAM_ERROR",
    });
  });

  test("a peer that stops answering (no FIN) is noticed by an unanswered PING: streams fail, the next request reconnects", async () => {
    const { origin } = await h2Server((stream) => {
      stream.resume();
      grpcLikeReply(stream, Buffer.from("alive"));
    });
    // A relay whose connections can be frozen: bytes stop flowing both ways, nothing closes.
    const sockets: net.Socket[] = [];
    let accepted = 0;
    const relay = net.createServer((down) => {
      accepted++;
      const up = net.connect(Number(new URL(origin).port), "127.0.0.1");
      down.pipe(up).pipe(down);
      sockets.push(down, up);
      down.on("error", () => undefined);
      up.on("error", () => undefined);
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          relay.close(() => r());
        }),
    );
    const { port } = relay.address() as AddressInfo;
    const c = new Http2Client(`http://127.0.0.1:${port}`, {
      keepAlive: { intervalMs: 50, timeoutMs: 100 },
    });
    closers.push(() => c.destroy());
    expect((await send(c)).body.toString()).toBe("alive");
    for (const s of sockets) {
      s.unpipe();
      s.pause();
    }
    await expect(send(c)).rejects.toMatchObject({ code: "ERR_HTTP2_STREAM_ERROR" });
    expect((await send(c)).body.toString()).toBe("alive");
    expect(accepted).toBe(2);
  });

  test("a finished stream no longer reaches its request (node:http2 keeps finished client streams through young-generation GCs)", async () => {
    // node:http2 keeps a client stream alive through every scavenge until the next full GC;
    // what the stream references is promoted with it. Holding the streams here stands in for
    // that: once a request is over, its handler must be collectable all the same.
    v8.setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const { origin } = await h2Server((stream) => {
      stream.respond({ ":status": 200 });
      stream.end("ok");
    });
    const c = client(origin);
    const streams: http2.ClientHttp2Stream[] = [];
    const onStream = (message: unknown) => {
      streams.push((message as { stream: http2.ClientHttp2Stream }).stream);
    };
    diagnosticsChannel.subscribe("http2.client.stream.created", onStream);
    closers.push(() => diagnosticsChannel.unsubscribe("http2.client.stream.created", onStream));

    const handlers: WeakRef<object>[] = [];
    const request = (method: string, body?: string) =>
      new Promise<number>((resolve, reject) => {
        const handler: Dispatcher.DispatchHandler = {
          onRequestStart() {},
          onResponseStart(_c, status) {
            resolve(status);
          },
          onResponseError(_c, err) {
            reject(err);
          },
        };
        handlers.push(new WeakRef(handler));
        c.dispatch({ origin, path: "/", method, body } as Dispatcher.DispatchOptions, handler);
      });
    expect(await request("GET")).toBe(200);
    expect(await request("POST", "a body")).toBe(200);
    expect(streams).toHaveLength(2);
    // Both streams closed (their requests settle on 'close') before the GC.
    for (const stream of streams) {
      if (!stream.closed) await once(stream, "close");
    }
    gc();
    expect(handlers.map((h) => h.deref() === undefined)).toEqual([true, true]);
  });

  test("a bad request fails alone (no reconnect loop); a failed exchange destroys its streaming body", async () => {
    const { origin, sessions } = await h2Server((stream, headers) => {
      if (headers[":path"] === "/reset-upload") {
        stream.once("data", () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
        return;
      }
      stream.resume();
      grpcLikeReply(stream, Buffer.from("ok"));
    });
    const c = client(origin);
    await expect(send(c, { headers: ["bad header", "x"] })).rejects.toMatchObject({
      code: "ERR_INVALID_HTTP_TOKEN",
    });
    expect((await send(c)).body.toString()).toBe("ok");
    expect(sessions()).toBe(1);

    let pushed = 0;
    const body = new Readable({
      read() {
        // An endless upload: only a destroy stops it.
        this.push(Buffer.alloc(1024, pushed++ & 0xff));
      },
    });
    await expect(send(c, { method: "POST", path: "/reset-upload", body })).rejects.toMatchObject({
      code: "ERR_HTTP2_STREAM_ERROR",
    });
    expect(body.destroyed).toBe(true);
  });

  test("an async iterable body is sent byte for byte with back-pressure; its error or an early end stops it", async () => {
    const { origin } = await h2Server((stream, headers) => {
      if (headers[":path"] === "/reset-upload") {
        stream.once("data", () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
        return;
      }
      const hash = createHash("sha256");
      let n = 0;
      stream.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        n += chunk.length;
      });
      stream.on("end", () => {
        stream.respond({ ":status": 200, "x-upload": `${n}:${hash.digest("hex")}` });
        stream.end();
      });
      stream.on("error", () => {});
    });
    const c = client(origin);
    // 3 MiB, more than the peer's stream window: the pump must wait for 'drain'.
    const upload = Buffer.alloc(3 << 20);
    for (let i = 0; i < upload.length; i++) upload[i] = (i * 7) & 0xff;
    async function* parts() {
      for (let i = 0; i < 48; i++) yield upload.subarray(i << 16, (i + 1) << 16);
      yield "tail";
    }
    const r = await send(c, { method: "POST", body: parts() as never });
    const sent = Buffer.concat([upload, Buffer.from("tail")]);
    expect(r.headers["x-upload"]).toBe(
      `${sent.length}:${createHash("sha256").update(sent).digest("hex")}`,
    );

    async function* failing() {
      yield Buffer.from("a");
      throw new Error("source broke");
    }
    await expect(send(c, { method: "POST", body: failing() as never })).rejects.toThrow(
      "source broke",
    );

    let returned = false;
    const endless: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: false, value: Buffer.alloc(1024, 1) }),
        return: async () => {
          returned = true;
          return { done: true, value: undefined };
        },
      }),
    };
    await expect(
      send(c, { method: "POST", path: "/reset-upload", body: endless as never }),
    ).rejects.toMatchObject({ code: "ERR_HTTP2_STREAM_ERROR" });
    expect(returned).toBe(true);
    expect((await send(c, { method: "POST", body: parts() as never })).status).toBe(200);
  });

  test("a connector that throws fails the queued requests, and the next request tries again", async () => {
    const { origin } = await h2Server((stream) => {
      stream.resume();
      grpcLikeReply(stream, Buffer.from("ok"));
    });
    let calls = 0;
    const c = new Http2Client(origin, {
      connect: (params, callback) => {
        if (calls++ === 0) throw new Error("identity not ready");
        const socket = net.connect(Number(params.port), params.hostname, () =>
          callback(null, socket),
        );
        socket.once("error", (e) => callback(e, null));
      },
    });
    closers.push(() => c.destroy());
    await expect(send(c)).rejects.toThrow("identity not ready");
    expect((await send(c)).body.toString()).toBe("ok");
  });
});
