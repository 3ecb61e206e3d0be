import { createHash } from "node:crypto";
import { once } from "node:events";
import type http from "node:http";
import { Agent as Agent8 } from "undici";
import { Agent as Agent7 } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import type { Interceptor } from "../src/index.js";
import { legacyRequest, pairs } from "./support/legacy-request.js";
import { serve, sha256, type TestServer, waitFor } from "./support/net.js";
import { type Observation, observing } from "./support/observer.js";

type GlobalFetch = (url: string, init?: Record<string, unknown>) => Promise<Response>;
/** Node 24's global fetch: bundled undici 7, which passes a legacy handler to `dispatch()`. */
const globalFetch = globalThis.fetch as unknown as GlobalFetch;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Closable {
  compose(...interceptors: Interceptor[]): unknown;
  destroy(): Promise<void>;
}

/**
 * undici 7's compose() adapts legacy handlers before the first interceptor sees them; undici 8's
 * does not, so there the interceptor's own toControllerHandler does the work.
 */
const agents: { name: string; make: () => Closable; adapts: boolean }[] = [
  { name: "undici 8 Agent", make: () => new Agent8() as unknown as Closable, adapts: true },
  { name: "undici 7 Agent", make: () => new Agent7() as unknown as Closable, adapts: false },
];

async function server(handler: http.RequestListener): Promise<TestServer> {
  const s = await serve(handler);
  cleanups.push(() => s.close());
  return s;
}

describe.each(agents)(
  "global fetch → $name composed with toControllerHandler",
  ({ make, adapts }) => {
    function composed(): { dispatcher: unknown; seen: Observation[] } {
      const agent = make();
      cleanups.push(() => agent.destroy());
      const { interceptor, seen } = observing();
      return { dispatcher: agent.compose(interceptor), seen };
    }

    it("GET: status, statusText, raw headers (repeated ones kept apart), body", async () => {
      const s = await server((_req, res) => {
        res.setHeader("set-cookie", ["a=1; Path=/", "b=2; Path=/"]);
        res.setHeader("x-mesh", "yes");
        res.writeHead(200, "Fine", { "content-type": "text/plain; charset=latin1" });
        res.end("hello");
      });
      const { dispatcher, seen } = composed();
      const res = await globalFetch(`${s.origin}/get`, { dispatcher });
      expect(res.status).toBe(200);
      expect(res.statusText).toBe("Fine");
      expect(res.headers.get("x-mesh")).toBe("yes");
      expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
      expect(await res.text()).toBe("hello");
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({
        adapted: adapts,
        started: true,
        statuses: [200],
        ended: true,
      });
      expect(seen[0]!.errors).toEqual([]);
    });

    it("POST with a body, in memory and streamed", async () => {
      const s = await server(async (req, res) => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify({ method: req.method, sha: sha256(Buffer.concat(chunks)) }));
      });
      const { dispatcher } = composed();
      const small = await globalFetch(`${s.origin}/post`, {
        method: "POST",
        body: "name=mesh",
        dispatcher,
      });
      expect(small.status).toBe(201);
      expect(await small.json()).toEqual({ method: "POST", sha: sha256("name=mesh") });

      const part = Buffer.alloc(256 * 1024, "x");
      const streamed = await globalFetch(`${s.origin}/post`, {
        method: "POST",
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(part);
            controller.enqueue(part);
            controller.close();
          },
        }),
        duplex: "half",
        dispatcher,
      });
      expect(streamed.status).toBe(201);
      expect(await streamed.json()).toEqual({
        method: "POST",
        sha: sha256(Buffer.concat([part, part])),
      });
    });

    it("streams a large response with back-pressure: the body pauses until the caller reads", async () => {
      const CHUNK = 64 * 1024;
      const TOTAL = 32 * 1024 * 1024; // far beyond what socket buffers can hold
      let written = 0;
      const sent = createHash("sha256");
      const s = await server((_req, res) => {
        res.writeHead(200, { "content-length": String(TOTAL) });
        let i = 0;
        const pump = () => {
          while (written < TOTAL) {
            const chunk = Buffer.alloc(CHUNK, i++ % 251);
            sent.update(chunk);
            written += CHUNK;
            if (!res.write(chunk)) {
              res.once("drain", pump);
              return;
            }
          }
          res.end();
        };
        pump();
      });
      const { dispatcher, seen } = composed();
      const res = await globalFetch(`${s.origin}/stream`, { dispatcher });
      expect(res.status).toBe(200);
      // Nobody reads yet: fetch's body stream fills up and the adapter must pause the body.
      await waitFor(() => (seen[0]?.pauses ?? 0) > 0);
      expect(written).toBeLessThan(TOTAL);

      const received = createHash("sha256");
      let bytes = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        received.update(chunk);
        bytes += chunk.byteLength;
      }
      expect(bytes).toBe(TOTAL);
      expect(received.digest("hex")).toBe(sent.digest("hex"));
      const o = seen[0]!;
      expect(o.resumes).toBeGreaterThan(0);
      expect(o.chunksWhilePaused).toBe(0);
      expect(o.ended).toBe(true);
    });

    it("aborting mid-body aborts through the controller and closes the connection", async () => {
      let serverRes: http.ServerResponse | undefined;
      const s = await server((_req, res) => {
        serverRes = res;
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first chunk");
      });
      const { dispatcher, seen } = composed();
      const ac = new AbortController();
      const res = await globalFetch(`${s.origin}/abort`, { dispatcher, signal: ac.signal });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const first = await reader.read();
      expect(Buffer.from(first.value!).toString()).toBe("first chunk");
      const closed = once(serverRes!, "close");
      ac.abort();
      await expect(reader.read()).rejects.toMatchObject({ name: "AbortError" });
      await closed;
      expect(serverRes!.writableEnded).toBe(false);
      const o = seen[0]!;
      expect(o.aborted).not.toBeNull();
      await waitFor(() => o.errors.length > 0);
      expect(o.ended).toBe(false);
    });

    it("a connection reset before the headers rejects fetch with the socket error", async () => {
      const s = await server((req) => req.socket.destroy());
      const { dispatcher, seen } = composed();
      const error = await globalFetch(`${s.origin}/reset`, { dispatcher }).then(
        () => null,
        (e: unknown) => e as Error & { cause?: { code?: string } },
      );
      expect(error).toBeInstanceOf(TypeError);
      expect(error!.cause?.code).toBe("UND_ERR_SOCKET");
      expect(seen[0]!.errors).toHaveLength(1);
    });

    it("a connection reset mid-body errors the body stream", async () => {
      const s = await server((req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("partial", () => req.socket.destroy());
      });
      const { dispatcher, seen } = composed();
      const res = await globalFetch(`${s.origin}/reset-body`, { dispatcher });
      expect(res.status).toBe(200);
      const error = await res.text().then(
        () => null,
        (e: unknown) => e as Error & { cause?: { code?: string } },
      );
      expect(error).toBeInstanceOf(TypeError);
      expect(error!.cause?.code).toBe("UND_ERR_SOCKET");
      expect(seen[0]!.errors.map((e) => (e as { code?: string }).code)).toEqual(["UND_ERR_SOCKET"]);
    });

    it("a 1xx informational response before the final one does not stall the body", async () => {
      const s = await server((_req, res) => {
        res.writeEarlyHints({ link: "</style.css>; rel=preload; as=style" }, () => {
          res.writeHead(200, { "content-type": "text/plain" });
          res.end("after hints");
        });
      });
      const { dispatcher } = composed();
      const res = await globalFetch(`${s.origin}/hints`, { dispatcher });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("after hints");
    });
  },
);

describe.each(agents)("a hand-written legacy handler → $name", ({ make, adapts }) => {
  function composed(): {
    dispatcher: { dispatch(o: object, h: object): boolean };
    seen: Observation[];
  } {
    const agent = make();
    cleanups.push(() => agent.destroy());
    const { interceptor, seen } = observing();
    return { dispatcher: agent.compose(interceptor) as never, seen };
  }

  it("gets raw headers and raw trailers, one pair per value", async () => {
    const s = await server((_req, res) => {
      res.setHeader("set-cookie", ["a=1", "b=2"]);
      res.writeHead(200, "Fine", { "content-type": "text/plain", trailer: "x-checksum" });
      res.write("body with trailers");
      res.addTrailers({ "x-checksum": "c0ffee" });
      res.end();
    });
    const { dispatcher, seen } = composed();
    const r = await legacyRequest(dispatcher, { origin: s.origin, path: "/trailers" });
    expect(r.statusCode).toBe(200);
    expect(r.statusText).toBe("Fine");
    expect(pairs(r.rawHeaders)).toEqual(
      expect.arrayContaining([
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
        ["content-type", "text/plain"],
      ]),
    );
    expect(r.body.toString()).toBe("body with trailers");
    expect(pairs(r.rawTrailers)).toEqual([["x-checksum", "c0ffee"]]);
    expect(seen[0]!.adapted).toBe(adapts);
  });

  it("abort() without a reason fails the request with an AbortError", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200);
      res.write("never finished");
    });
    const { dispatcher } = composed();
    await expect(
      legacyRequest(dispatcher, { origin: s.origin, path: "/abort" }, true),
    ).rejects.toMatchObject({ name: "AbortError" });
  });

  it("hands an upgraded socket to onUpgrade", async () => {
    const s = await server(() => {});
    s.server.on("upgrade", (_req, socket) => {
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: mesh-test\r\n\r\n",
      );
      socket.on("data", (d: Buffer) => socket.end(`echo:${d.toString()}`));
    });
    const { dispatcher } = composed();
    const r = await legacyRequest(dispatcher, {
      origin: s.origin,
      path: "/up",
      upgrade: "mesh-test",
    });
    expect(r.statusCode).toBe(101);
    expect(pairs(r.rawHeaders)).toContainEqual(["upgrade", "mesh-test"]);
    const socket = r.socket!;
    socket.write("ping");
    const [reply] = (await once(socket, "data")) as [Buffer];
    expect(reply.toString()).toBe("echo:ping");
    socket.destroy();
  });
});
