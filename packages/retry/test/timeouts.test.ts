import { meshChannels } from "@mesh/core";
import { Agent, type Dispatcher, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import {
  IdleTimeoutError,
  PerTryTimeoutError,
  RequestTimeoutError,
  type RetryPolicyOptions,
  retry,
  type TimeoutEvent,
  type TimeoutOptions,
  timeout,
} from "../src/index.js";
import { collect } from "./support/events.js";
import { http1Server, type Plan, type TestServer } from "./support/servers.js";

const channels = meshChannels.retry;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function server(plan: Plan): Promise<TestServer> {
  const s = await http1Server(plan);
  open.push(s);
  return s;
}

/** The recommended order: compose(retry, timeout) makes timeout outermost. */
function stack(r: RetryPolicyOptions, t: TimeoutOptions): Dispatcher {
  const a = new Agent();
  open.push({ close: () => a.destroy() });
  return a.compose(
    retry({ backoff: { base: 0, max: 0 }, budget: { minRetriesPerSecond: 1000 }, ...r }),
    timeout(t),
  );
}

const hang: Plan = () => {};

describe("timeouts", () => {
  it("per-try timeout is retried; the next attempt's response is returned", async () => {
    const s = await server(({ n, res }) => {
      if (n > 0) res.end("late but fine");
    });
    const ev = collect([channels.timeout, channels.retry]);
    const res = await request(s.origin, {
      dispatcher: stack({ perTryTimeout: 100, limit: 3 }, {}),
    });
    ev.stop();
    expect(await res.body.text()).toBe("late but fine");
    expect(s.seen.length).toBeGreaterThanOrEqual(2);
    expect(ev.events[0]).toEqual({
      channel: channels.timeout,
      message: { name: "default", kind: "per-try", timeoutMs: 100, origin: s.origin },
    });
    expect(ev.events[1]!.message).toMatchObject({ reason: "per-try-timeout", attempt: 1 });
  });

  it("a per-try timeout that is not retried fails with PerTryTimeoutError", async () => {
    const s = await server(hang);
    const err = await request(s.origin, {
      dispatcher: stack({ perTryTimeout: 50, retryOnPerTryTimeout: false }, {}),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PerTryTimeoutError);
    expect(err).toMatchObject({ code: "MESH_RETRY_PER_TRY_TIMEOUT", timeoutMs: 50 });
  });

  it("the request deadline spans every attempt and wins over retries", async () => {
    const s = await server(hang);
    const ev = collect([channels.attempt, channels.timeout]);
    const started = performance.now();
    const err = await request(s.origin, {
      dispatcher: stack({ perTryTimeout: 100, limit: 50 }, { request: 400 }),
    }).catch((e: unknown) => e);
    ev.stop();
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect(err).toMatchObject({ code: "MESH_RETRY_REQUEST_TIMEOUT", kind: "request" });
    // Several attempts were made inside the one deadline, and it ended promptly.
    expect(ev.events.filter((e) => e.channel === channels.attempt).length).toBeGreaterThanOrEqual(
      2,
    );
    const kinds = ev.events
      .filter((e) => e.channel === channels.timeout)
      .map((e) => (e.message as TimeoutEvent).kind);
    expect(kinds.at(-1)).toBe("request");
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("the deadline also cuts a pending backoff short", async () => {
    const s = await server(({ res }) => {
      res.writeHead(503, { "retry-after": "30" });
      res.end();
    });
    const started = performance.now();
    const err = await request(s.origin, {
      dispatcher: stack({ retryAfterMax: 60_000 }, { request: 200 }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(s.seen).toHaveLength(1);
  });

  it("idle timeout fires between body chunks", async () => {
    const s = await server(({ res }) => {
      res.writeHead(200);
      res.write("first chunk");
    });
    const ev = collect([channels.timeout]);
    const res = await request(s.origin, { dispatcher: stack({}, { idle: 100 }) });
    expect(res.statusCode).toBe(200);
    const err = await res.body.text().catch((e: unknown) => e);
    ev.stop();
    expect(err).toBeInstanceOf(IdleTimeoutError);
    expect(err).toMatchObject({ code: "MESH_RETRY_IDLE_TIMEOUT" });
    expect(ev.events[0]!.message).toMatchObject({ kind: "idle", timeoutMs: 100 });
  });

  it("an AbortSignal ends an attempt in flight at once", async () => {
    const s = await server(hang);
    const ac = new AbortController();
    const pending = request(s.origin, {
      dispatcher: stack({}, { request: 60_000 }),
      signal: ac.signal,
    });
    while (s.seen.length === 0) await new Promise((r) => setImmediate(r));
    const started = performance.now();
    ac.abort(new Error("caller gave up"));
    await expect(pending).rejects.toThrow("caller gave up");
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("an AbortSignal ends a pending backoff at once", async () => {
    const s = await server(({ res }) => {
      res.writeHead(503, { "retry-after": "30" });
      res.end();
    });
    const ev = collect([channels.retry]);
    const ac = new AbortController();
    const pending = request(s.origin, {
      dispatcher: stack({ retryAfterMax: 60_000 }, {}),
      signal: ac.signal,
    });
    while (ev.events.length === 0) await new Promise((r) => setImmediate(r));
    ev.stop();
    const started = performance.now();
    ac.abort(new Error("stop"));
    await expect(pending).rejects.toThrow("stop");
    expect(performance.now() - started).toBeLessThan(2000);
    expect(s.seen).toHaveLength(1);
  });

  it("validates options", () => {
    expect(() => timeout({ request: 0 })).toThrow(
      "timeout.request: expected a number in 1..2147483647, got 0",
    );
    expect(() => timeout({ idle: "1s" as never })).toThrow(TypeError);
  });
});
