import diagnostics from "node:diagnostics_channel";
import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { meshChannels } from "@mesh/core";
import { Agent, request } from "undici";
import { Agent as Agent7, request as request7 } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import {
  GradientLimiter,
  limitRequests,
  type QueuedEvent,
  RateLimitedError,
  type RateLimitedEvent,
  RateLimiter,
  rateLimit,
} from "../src/index.js";
import { ManualClock } from "./support.js";

const open: Array<() => unknown> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c()));
});

async function listen(server: http.Server | http2.Http2Server): Promise<string> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  open.push(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function okServer(): Promise<string> {
  const server = http.createServer((_req, res) => res.end("ok"));
  open.push(() => {
    server.closeAllConnections();
  });
  return listen(server);
}

function subscribe<T>(name: string): T[] {
  const seen: T[] = [];
  const fn = (m: unknown) => seen.push(m as T);
  diagnostics.subscribe(name, fn);
  open.push(() => diagnostics.unsubscribe(name, fn));
  return seen;
}

// Typed as undici 8's: both majors share the run-time API the tests use.
const majors = [
  { major: 8, Agent, request },
  {
    major: 7,
    Agent: Agent7 as unknown as typeof Agent,
    request: request7 as unknown as typeof request,
  },
];

describe.each(majors)("rateLimit() interceptor on undici $major", ({ Agent: A, request: req }) => {
  it("fails fast beyond the limit with RateLimitedError (429, retryAfterMs) without touching the network", async () => {
    const origin = await okServer();
    const clock = new ManualClock();
    const agent = new A();
    open.push(() => agent.close());
    const limited = agent.compose(
      rateLimit({ limiter: { total: { requestsPerSecond: 2 }, clock, name: "out" } }),
    );
    const events = subscribe<RateLimitedEvent>(meshChannels.limit.rateLimited);
    for (let i = 0; i < 2; i++) {
      const r = await req(origin, { dispatcher: limited });
      expect(r.statusCode).toBe(200);
      await r.body.text();
    }
    const err = await req(origin, { dispatcher: limited }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err).toMatchObject({ code: "MESH_LIMIT_RATE_LIMITED", statusCode: 429, limit: "total" });
    expect((err as RateLimitedError).retryAfterMs).toBeCloseTo(500);
    expect(events).toEqual([{ name: "out", key: undefined, limit: "total", retryAfterMs: 500 }]);
    clock.advance(500);
    const r = await req(origin, { dispatcher: limited });
    expect(r.statusCode).toBe(200);
    await r.body.text();
  });

  it("queues up to maxWait and maxQueue, then fails with MESH_LIMIT_QUEUE_FULL", async () => {
    const origin = await okServer();
    const clock = new ManualClock(); // frozen: the waits are exact
    const agent = new A();
    open.push(() => agent.close());
    const limited = agent.compose(
      rateLimit({
        limiter: { identity: { requestsPerSecond: 50, burst: 1 }, clock },
        key: (o) => String(o.origin),
        mode: "queue",
        maxWait: 1000,
        maxQueue: 2,
      }),
    );
    const queued = subscribe<QueuedEvent>(meshChannels.limit.queued);
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map(async () => {
        const r = await req(origin, { dispatcher: limited });
        await r.body.text();
        return r.statusCode;
      }),
    );
    expect(results.slice(0, 3)).toEqual([
      { status: "fulfilled", value: 200 },
      { status: "fulfilled", value: 200 },
      { status: "fulfilled", value: 200 },
    ]);
    expect(results[3]).toMatchObject({
      status: "rejected",
      reason: { code: "MESH_LIMIT_QUEUE_FULL", limit: "identity" },
    });
    expect(queued.map((e) => e.waitMs)).toEqual([20, 40]);
    expect(queued[0]?.key).toBe(origin);
  });
});

describe("rateLimit() with Node's global fetch", () => {
  it("works as fetch's dispatcher on an undici 7 Agent (fetch's own major)", async () => {
    const origin = await okServer();
    const agent = new Agent7();
    open.push(() => agent.close());
    const dispatcher = agent.compose(
      rateLimit({ limiter: { total: { requestsPerSecond: 1 }, clock: new ManualClock() } }),
    );
    const ok = await fetch(origin, { dispatcher } as RequestInit);
    expect(await ok.text()).toBe("ok");
    const err = await fetch(origin, { dispatcher } as RequestInit).catch((e: unknown) => e);
    expect((err as Error).cause).toBeInstanceOf(RateLimitedError);
  });
});

describe("limitRequests() server helper", () => {
  it("answers 429 with retry-after beyond the rate, per key", async () => {
    const clock = new ManualClock();
    const server = http.createServer(
      limitRequests((_req, res) => res.end("ok"), {
        rateLimit: { identity: { requestsPerSecond: 0.5, burst: 1 }, clock },
        key: (req) => req.headers["x-client"] as string | undefined,
      }),
    );
    const origin = await listen(server);
    const get = async (client: string) => {
      const r = await request(origin, { headers: { "x-client": client } });
      return {
        status: r.statusCode,
        retryAfter: r.headers["retry-after"],
        body: await r.body.text(),
      };
    };
    expect(await get("a")).toMatchObject({ status: 200, body: "ok" });
    expect(await get("a")).toEqual({
      status: 429,
      retryAfter: "2",
      body: "rate limited (identity limit)\n",
    });
    expect(await get("b")).toMatchObject({ status: 200 });
    server.closeAllConnections();
  });

  it("answers gRPC with a trailers-only RESOURCE_EXHAUSTED over HTTP/2", async () => {
    const clock = new ManualClock();
    const server = http2.createServer(
      limitRequests((_req, res) => res.end(), {
        rateLimit: { total: { requestsPerSecond: 1 }, clock },
      }),
    );
    const origin = await listen(server);
    const client = http2.connect(origin);
    open.push(() => client.close());
    const call = async () => {
      const stream = client.request({
        ":method": "POST",
        ":path": "/pkg.Svc/Method",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.end();
      const [headers, flags] = (await once(stream, "response")) as [
        http2.IncomingHttpHeaders,
        number,
      ];
      stream.resume();
      await once(stream, "close");
      return { headers, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 };
    };
    await call();
    const { headers, endStream } = await call();
    expect(endStream).toBe(true); // trailers-only
    expect(headers[":status"]).toBe(200);
    expect(headers["grpc-status"]).toBe("8");
    expect(headers["grpc-retry-pushback-ms"]).toBe("1000");
  });

  it("refuses beyond the adaptive concurrency limit with 503 at once, and frees the slot when the response ends", async () => {
    const limiter = new GradientLimiter({ minLimit: 1, maxLimit: 1 });
    const held: http.ServerResponse[] = [];
    const server = http.createServer(
      limitRequests(
        (_req: http.IncomingMessage, res: http.ServerResponse) => {
          held.push(res);
        },
        { concurrency: limiter },
      ),
    );
    const origin = await listen(server);
    const agent = new Agent();
    open.push(() => agent.close());
    const first = request(origin, { dispatcher: agent });
    while (held.length === 0) await new Promise((r) => setImmediate(r));
    const second = await request(origin, { dispatcher: agent });
    expect(second.statusCode).toBe(503);
    expect(await second.body.text()).toBe("concurrency limit reached\n");
    expect(limiter.inFlight).toBe(1);
    held[0]?.end("done");
    expect(await (await first).body.text()).toBe("done");
    const third = request(origin, { dispatcher: agent });
    while (held.length === 1) await new Promise((r) => setImmediate(r));
    expect(limiter.inFlight).toBe(1);
    held[1]?.end("again");
    expect((await third).statusCode).toBe(200);
  });

  it("names the option path of bad values", () => {
    expect(() => limitRequests(() => {}, {})).toThrow(
      "limitRequests: expected rateLimit or concurrency, got {}",
    );
    expect(() =>
      rateLimit({
        limiter: new RateLimiter({ total: { requestsPerSecond: 1 } }),
        mode: "drop" as never,
      }),
    ).toThrow('rateLimit.mode: expected "fail-fast" or "queue", got "drop"');
  });
});
