import { Readable } from "node:stream";
import { meshChannels } from "@mesh/core";
import { Agent, type Dispatcher, fetch, Pool, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { RetryBudget, type RetryEvent, type RetryPolicyOptions, retry } from "../src/index.js";
import { collect } from "./support/events.js";
import { failFirst, http1Server, sha256, type TestServer } from "./support/servers.js";

const channels = meshChannels.retry;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function server(plan: Parameters<typeof http1Server>[0]): Promise<TestServer> {
  const s = await http1Server(plan);
  open.push(s);
  return s;
}

/** Fast, deterministic policy for tests: no backoff wait, a roomy budget. */
function policy(extra: RetryPolicyOptions = {}): RetryPolicyOptions {
  return { backoff: { base: 0, max: 0 }, budget: { minRetriesPerSecond: 1000 }, ...extra };
}

function agent(extra: RetryPolicyOptions = {}): Dispatcher {
  const a = new Agent();
  open.push(a);
  return a.compose(retry(policy(extra)));
}

describe("retry() over HTTP/1.1 (undici 8)", () => {
  it("retries a GET that got 503 and returns the retry's response", async () => {
    const s = await server(failFirst(1));
    const ev = collect([channels.attempt, channels.retry]);
    const res = await request(`${s.origin}/a`, { dispatcher: agent() });
    ev.stop();
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("ok 1");
    expect(s.seen).toHaveLength(2);
    expect(ev.events.map((e) => e.channel)).toEqual([
      channels.attempt,
      channels.retry,
      channels.attempt,
    ]);
    expect(ev.events[0]!.message).toEqual({
      name: "default",
      attempt: 0,
      method: "GET",
      origin: s.origin,
      path: "/a",
    });
    expect(ev.events[1]!.message).toEqual({
      name: "default",
      attempt: 1,
      reason: "http-503",
      delayMs: 0,
      origin: s.origin,
    });
  });

  it("stops at limit (default 1) and returns the last failure", async () => {
    const s = await server(failFirst(10));
    const ev = collect([channels.limitExceeded]);
    const res = await request(s.origin, { dispatcher: agent() });
    ev.stop();
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(s.seen).toHaveLength(2);
    expect(ev.events.map((e) => e.message)).toEqual([
      { name: "default", reason: "http-503", origin: s.origin },
    ]);

    const s3 = await server(failFirst(10));
    const res3 = await request(s3.origin, { dispatcher: agent({ limit: 3 }) });
    await res3.body.dump();
    expect(s3.seen).toHaveLength(4);
  });

  it("does not retry POST unless the route or the request is marked retryable", async () => {
    const s = await server(failFirst(1));
    const res = await request(s.origin, { method: "POST", body: "x", dispatcher: agent() });
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(s.seen).toHaveLength(1);

    const sm = await server(failFirst(1));
    const marked = await request(sm.origin, {
      method: "POST",
      body: "x",
      headers: { "mesh-retryable": "true" },
      dispatcher: agent(),
    });
    expect(marked.statusCode).toBe(200);
    await marked.body.dump();
    expect(sm.seen).toHaveLength(2);
    // The marker is ours: it is not sent upstream.
    expect(sm.seen[1]!.headers["mesh-retryable"]).toBeUndefined();

    const s2 = await server(failFirst(1));
    const route = await request(s2.origin, {
      method: "POST",
      body: "x",
      dispatcher: agent({ retryNonIdempotent: true }),
    });
    expect(route.statusCode).toBe(200);
    await route.body.dump();

    const s3 = await server(failFirst(1));
    const optOut = await request(s3.origin, {
      headers: { "mesh-retryable": "false" },
      dispatcher: agent(),
    });
    expect(optOut.statusCode).toBe(503);
    await optOut.body.dump();
    expect(s3.seen).toHaveLength(1);
  });

  it("replays a streamed request body byte-exact on the retry", async () => {
    const s = await server(failFirst(1));
    const chunks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000 + i, i));
    const expected = sha256(Buffer.concat(chunks));
    const res = await request(s.origin, {
      method: "PUT",
      body: Readable.from(chunks),
      dispatcher: agent(),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(s.seen.map((x) => x.bodySha256)).toEqual([expected, expected]);
  });

  it("replays in-memory bodies and fetch bodies byte-exact", async () => {
    const s = await server(failFirst(1));
    const body = Buffer.alloc(30_000, 7);
    const res = await request(s.origin, { method: "PUT", body, dispatcher: agent() });
    await res.body.dump();
    const s2 = await server(failFirst(1));
    const f2 = await fetch(s2.origin, {
      method: "PUT",
      body: new Uint8Array(body),
      dispatcher: agent(),
    });
    expect(f2.status).toBe(200);
    await f2.arrayBuffer();
    const s3 = await server(failFirst(1));
    const f3 = await fetch(s3.origin, { method: "PUT", body: "hello", dispatcher: agent() });
    expect(await f3.text()).toBe("ok 1");
    expect(s.seen.map((x) => x.bodySha256)).toEqual([sha256(body), sha256(body)]);
    expect(s3.seen.map((x) => x.bodySha256)).toEqual([sha256("hello"), sha256("hello")]);
    expect(s2.seen.map((x) => x.bodySha256)).toEqual([sha256(body), sha256(body)]);
  });

  it("does not retry when a streamed body is larger than maxReplayBytes", async () => {
    const s = await server(failFirst(1));
    const chunks = Array.from({ length: 10 }, () => Buffer.alloc(1024, 1));
    const res = await request(s.origin, {
      method: "PUT",
      body: Readable.from(chunks),
      dispatcher: agent({ maxReplayBytes: 4096 }),
    });
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(s.seen).toHaveLength(1);
    expect(s.seen[0]!.bodyBytes).toBe(10 * 1024);
  });

  it("retries a connection reset before any response byte", async () => {
    const s = await server(({ n, res, socket }) => {
      if (n === 0) socket?.destroy();
      else res.end("fine");
    });
    const res = await request(s.origin, { dispatcher: agent() });
    expect(await res.body.text()).toBe("fine");
    expect(s.seen).toHaveLength(2);
  });

  it("retries a refused connection", async () => {
    const s = await server(() => {});
    await s.close();
    const ev = collect([channels.retry]);
    await expect(request(s.origin, { dispatcher: agent() })).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
    ev.stop();
    expect((ev.events[0]!.message as RetryEvent).reason).toBe("ECONNREFUSED");
  });

  it("never retries once the response started streaming", async () => {
    const s = await server(({ n, res, socket }) => {
      if (n === 0) {
        res.writeHead(200, { "content-length": "100" });
        res.write("partial", () => socket?.destroy());
      } else res.end("second");
    });
    const res = await request(s.origin, { dispatcher: agent({ limit: 3 }) });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    expect(s.seen).toHaveLength(1);
  });

  it("honours Retry-After within retryAfterMax, and returns the response beyond it", async () => {
    const s = await server(failFirst(1, 503, { "retry-after": "1" }));
    const ev = collect([channels.retry]);
    const started = performance.now();
    const res = await request(s.origin, { dispatcher: agent({ retryAfterMax: 5000 }) });
    ev.stop();
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect((ev.events[0]!.message as RetryEvent).delayMs).toBe(1000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);

    const s2 = await server(failFirst(1, 503, { "retry-after": "60" }));
    const res2 = await request(s2.origin, { dispatcher: agent({ retryAfterMax: 5000 }) });
    expect(res2.statusCode).toBe(503);
    expect(res2.headers["retry-after"]).toBe("60");
    await res2.body.dump();
    expect(s2.seen).toHaveLength(1);
  });

  it("stops retrying when the shared budget is exhausted", async () => {
    const s = await server(failFirst(1000));
    const budget = new RetryBudget({ name: "orders", retryRatio: 0.2, minRetriesPerSecond: 0 });
    const pool = new Pool(s.origin, { connections: 4 });
    open.push(pool);
    const d = pool.compose(retry({ budget, backoff: { base: 0, max: 0 } }));
    const ev = collect([channels.budgetExhausted]);
    for (let i = 0; i < 20; i++) {
      const res = await request(s.origin, { dispatcher: d });
      await res.body.dump();
    }
    ev.stop();
    // 20 requests earn 4 retries at ratio 0.2.
    expect(s.seen).toHaveLength(24);
    expect(budget.state()).toMatchObject({ deposits: 20, withdrawals: 4 });
    expect(ev.events).toHaveLength(16);
    expect(ev.events[0]!.message).toEqual({ name: "orders", reason: "http-503", origin: s.origin });
  });
});
