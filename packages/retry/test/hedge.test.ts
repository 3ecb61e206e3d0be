import diagnostics from "node:diagnostics_channel";
import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { meshChannels } from "@mesh/core";
import { Agent, type Dispatcher, request } from "undici";
import { Agent as Agent7, request as request7 } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import { type HedgeOptions, hedge, RetryBudget } from "../src/index.js";
import { collect } from "./support/events.js";

const channels = meshChannels.retry;
const open: { close(): unknown }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

/** What a test server does with one request; `cancelled` resolves when the client gave up on it. */
type Handler = (ctx: { n: number; respond(status: number, body: string): void }) => void;

interface Server {
  origin: string;
  requests: number;
  /** Resolves with the request number of the first request the client cancelled. */
  cancelled: Promise<number>;
}

/** An HTTP/1.1 server on 127.0.0.1:0 that notices a request abandoned before its answer. */
async function h1(handle: Handler): Promise<Server> {
  let onCancel!: (n: number) => void;
  const cancelled = new Promise<number>((r) => {
    onCancel = r;
  });
  const s: Server = { origin: "", requests: 0, cancelled };
  const server = http.createServer((req, res) => {
    const n = s.requests++;
    res.on("close", () => {
      if (!res.writableFinished) onCancel(n);
    });
    req.resume();
    handle({ n, respond: (status, body) => res.writeHead(status).end(body) });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  s.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  open.push({
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  });
  return s;
}

/** An h2c server that notices a stream reset (RST_STREAM) before its answer. */
async function h2cStreams(
  handle: (stream: http2.ServerHttp2Stream, n: number) => void,
): Promise<Server> {
  let onCancel!: (n: number) => void;
  const cancelled = new Promise<number>((r) => {
    onCancel = r;
  });
  const s: Server = { origin: "", requests: 0, cancelled };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (x) => sessions.add(x));
  server.on("stream", (stream) => {
    const n = s.requests++;
    stream.on("close", () => {
      // Reset by the client (RST_STREAM) before the server answered.
      if (stream.aborted) onCancel(n);
    });
    stream.resume();
    handle(stream, n);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  s.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  open.push({
    close: () => {
      for (const x of sessions) x.destroy();
      server.close();
    },
  });
  return s;
}

/** {@link h2cStreams} with the {@link Handler} contract of the HTTP/1.1 server. */
function h2c(handle: Handler): Promise<Server> {
  return h2cStreams((stream, n) =>
    handle({
      n,
      respond: (status, body) => {
        stream.respond({ ":status": status });
        stream.end(body);
      },
    }),
  );
}

/** Sends attempt k of every request to servers[k % n], as a balancer would pick another endpoint. */
function roundRobin(servers: { origin: string }[]) {
  let next = 0;
  return (dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch =>
    (opts, handler) =>
      dispatch({ ...opts, origin: servers[next++ % servers.length]!.origin }, handler);
}

function client(servers: { origin: string }[], options: HedgeOptions, h2 = false): Dispatcher {
  const agent = new Agent(
    h2 ? ({ allowH2: true, useH2c: true } as ConstructorParameters<typeof Agent>[0]) : {},
  );
  open.push({ close: () => agent.destroy() });
  return agent.compose(roundRobin(servers), hedge(options));
}

const stall: Handler = () => undefined;

/** A server that holds its first request until `release()`; `slowSeen` resolves when it arrived. */
async function heldServer() {
  let respond!: (status: number, body: string) => void;
  let arrived!: () => void;
  const slowSeen = new Promise<void>((r) => {
    arrived = r;
  });
  const slow = await h1((ctx) => {
    respond = ctx.respond;
    arrived();
  });
  return { slow, slowSeen, release: () => respond(200, "slow") };
}
const answer =
  (body: string, status = 200): Handler =>
  ({ respond }) =>
    respond(status, body);
const generous = { budget: { minRetriesPerSecond: 1000 } };

describe("hedge() over real sockets", () => {
  it("HTTP/1.1: a stalled endpoint is hedged after the delay, the hedge's answer wins and the loser's connection is closed", async () => {
    const slow = await h1(stall);
    const fast = await h1(answer("fast"));
    const seen = collect([channels.hedge, channels.hedgeWon]);
    const res = await request(`${slow.origin}/item`, {
      dispatcher: client([slow, fast], { delay: 20, ...generous }),
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("fast");
    // The stalled request is cancelled: the endpoint sees its connection close unanswered.
    expect(await slow.cancelled).toBe(0);
    seen.stop();
    expect(seen.events.map((e) => e.channel)).toEqual([channels.hedge, channels.hedgeWon]);
    expect(seen.events[0]?.message).toMatchObject({ attempt: 1, name: "default" });
  });

  it("HTTP/2: the losing stream is reset at the endpoint, the connection stays up", async () => {
    const slow = await h2c(stall);
    const fast = await h2c(answer("fast"));
    const res = await request(`${slow.origin}/item`, {
      dispatcher: client([slow, fast], { delay: 20, ...generous }, true),
    });
    expect(await res.body.text()).toBe("fast");
    expect(await slow.cancelled).toBe(0);
    expect(fast.requests).toBe(1);
  });

  it("the first answer wins: a fast original is not hedged and nothing is cancelled", async () => {
    const a = await h1(answer("a"));
    const b = await h1(answer("b"));
    const dispatcher = client([a, b], { delay: 60_000, ...generous });
    for (let i = 0; i < 3; i++) {
      const res = await request(`${a.origin}/`, { dispatcher });
      await res.body.text();
    }
    expect(a.requests + b.requests).toBe(3);
  });

  it("with the retry budget exhausted no hedge is sent: the slow answer is awaited", async () => {
    const { slow, slowSeen, release } = await heldServer();
    const fast = await h1(answer("fast"));
    const budget = new RetryBudget({ retryRatio: 0, minRetriesPerSecond: 0 });
    const seen = collect([channels.budgetExhausted]);
    const exhausted = new Promise<void>((resolve) =>
      diagnostics.subscribe(channels.budgetExhausted, function done() {
        diagnostics.unsubscribe(channels.budgetExhausted, done);
        resolve();
      }),
    );
    const pending = request(`${slow.origin}/`, {
      dispatcher: client([slow, fast], { delay: 10, budget }),
    });
    // The hedge the delay asked for was refused by the budget; only then let slow answer.
    await Promise.all([exhausted, slowSeen]);
    seen.stop();
    release();
    const res = await pending;
    expect(await res.body.text()).toBe("slow");
    expect(fast.requests).toBe(0);
    expect(seen.events[0]?.message).toMatchObject({ reason: "hedge" });
  });

  it("a non-fatal 503 sends the next hedge at once (A6) instead of ending the race", async () => {
    const failing = await h1(answer("busy", 503));
    const ok = await h1(answer("ok"));
    const res = await request(`${failing.origin}/`, {
      dispatcher: client([failing, ok], { delay: 60_000, nonFatal: { http: "503" }, ...generous }),
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("ok");
    // Without nonFatal a 503 is a final answer.
    const plain = await request(`${failing.origin}/`, {
      dispatcher: client([failing, ok], { delay: 60_000, ...generous }),
    });
    expect(plain.statusCode).toBe(503);
    await plain.body.text();
  });

  it("when every attempt answers non-fatal, the last answer is returned", async () => {
    const a = await h1(answer("a busy", 503));
    const b = await h1(answer("b busy", 503));
    const res = await request(`${a.origin}/`, {
      dispatcher: client([a, b], { delay: 60_000, nonFatal: { http: "5xx" }, ...generous }),
    });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe("b busy");
  });

  it("a POST is never hedged, and a stalled one is answered by its only endpoint", async () => {
    const { slow, slowSeen, release } = await heldServer();
    const fast = await h1(answer("fast"));
    const pending = request(`${slow.origin}/`, {
      method: "POST",
      body: "x",
      dispatcher: client([slow, fast], { delay: 0, ...generous }),
    });
    // Meanwhile a GET goes through (hedged or not, fast answers it).
    const get = await request(`${slow.origin}/`, {
      dispatcher: client([fast, fast], { delay: 0, ...generous }),
    });
    await Promise.all([get.body.text(), slowSeen]);
    release();
    expect(await (await pending).body.text()).toBe("slow");
    // Hedged after 0 ms, the POST would have been answered "fast" by the second endpoint.
    expect(slow.requests).toBe(1);
    expect(fast.requests).toBeGreaterThanOrEqual(1);
  });

  it("gRPC: only methods listed in grpcMethods are hedged; a trailers-only UNAVAILABLE is non-fatal when listed", async () => {
    /** A gRPC-shaped h2c endpoint: stalls, answers OK, or answers trailers-only UNAVAILABLE. */
    function grpcServer(kind: "stall" | "ok" | "unavailable", pushback?: string) {
      return h2cStreams((stream) => {
        if (kind === "stall") return;
        if (kind === "unavailable") {
          stream.respond(
            {
              ":status": 200,
              "content-type": "application/grpc",
              "grpc-status": "14",
              ...(pushback === undefined ? {} : { "grpc-retry-pushback-ms": pushback }),
            },
            { endStream: true },
          );
          return;
        }
        stream.respond(
          { ":status": 200, "content-type": "application/grpc" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b]));
      });
    }
    const call = (dispatcher: Dispatcher, origin: string, path: string) =>
      request(`${origin}${path}`, {
        method: "POST",
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: Buffer.from([0, 0, 0, 0, 0]),
        dispatcher,
      });
    const options = { delay: 20, grpcMethods: ["/books.Books/Get"], ...generous };
    // A listed method: the stalled attempt is hedged, the hedge answers, the stall is reset.
    const stalled = await grpcServer("stall");
    const ok = await grpcServer("ok");
    const res = await call(
      client([stalled, ok], options, true),
      stalled.origin,
      "/books.Books/Get",
    );
    expect(res.statusCode).toBe(200);
    expect((await res.body.arrayBuffer()).byteLength).toBe(7);
    expect(await stalled.cancelled).toBe(0);
    // An unlisted method is sent once: answered by the only endpoint it reached.
    const unavailable = await grpcServer("unavailable");
    const once_ = await call(
      client([unavailable, ok], { ...options, delay: 60_000 }, true),
      unavailable.origin,
      "/books.Books/Delete",
    );
    expect(once_.headers["grpc-status"]).toBe("14");
    await once_.body.dump();
    // UNAVAILABLE listed as non-fatal: the race goes on at once, the hedge's OK wins.
    const raced = await call(
      client(
        [unavailable, ok],
        { ...options, delay: 60_000, nonFatal: { grpc: ["unavailable"] } },
        true,
      ),
      unavailable.origin,
      "/books.Books/Get",
    );
    expect(raced.headers["grpc-status"]).toBeUndefined();
    await raced.body.dump();
    expect(raced.trailers["grpc-status"]).toBe("0");
    // A6 pushback: a negative grpc-retry-pushback-ms ends the race with that answer; a
    // positive one delays the next hedge, which then wins.
    const nonFatal = { ...options, delay: 60_000, nonFatal: { grpc: ["unavailable"] } };
    const refusing = await grpcServer("unavailable", "-1");
    const okAtStop = ok.requests;
    const stop = await call(
      client([refusing, ok], nonFatal, true),
      refusing.origin,
      "/books.Books/Get",
    );
    expect(stop.headers["grpc-status"]).toBe("14");
    await stop.body.dump();
    expect(ok.requests).toBe(okAtStop);
    const pushing = await grpcServer("unavailable", "30");
    const okBefore = ok.requests;
    const later = await call(
      client([pushing, ok], nonFatal, true),
      pushing.origin,
      "/books.Books/Get",
    );
    await later.body.dump();
    expect(later.trailers["grpc-status"]).toBe("0");
    expect(ok.requests).toBe(okBefore + 1);
  });

  it("works on undici 7 dispatchers (Node's bundled fetch major)", async () => {
    const slow = await h1(stall);
    const fast = await h1(answer("fast"));
    const agent = new Agent7();
    open.push({ close: () => agent.destroy() });
    const dispatcher = agent.compose(
      roundRobin([slow, fast]) as never,
      hedge({ delay: 20, ...generous }) as never,
    );
    const res = await request7(`${slow.origin}/`, { dispatcher });
    expect(await res.body.text()).toBe("fast");
    expect(await slow.cancelled).toBe(0);
  });
});
