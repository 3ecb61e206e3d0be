import diagnostics from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { type BreakerEvent, CircuitOpenError, circuitBreaker, retry } from "../src/index.js";
import { collect } from "./support/events.js";
import { http1Server, type TestServer } from "./support/servers.js";

const channels = meshChannels.retry;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

/** Waits for the next breaker transition to `state`. */
function nextState(state: BreakerEvent["state"]): Promise<BreakerEvent> {
  return new Promise((resolve) => {
    const fn = (m: unknown) => {
      if ((m as BreakerEvent).state !== state) return;
      diagnostics.unsubscribe(channels.breaker, fn);
      resolve(m as BreakerEvent);
    };
    diagnostics.subscribe(channels.breaker, fn);
  });
}

describe("circuitBreaker()", () => {
  it("opens on failures, fails fast while open, half-opens after resetTimeout, closes on success", async () => {
    let healthy = false;
    const s: TestServer = await http1Server(({ res }) => {
      res.writeHead(healthy ? 200 : 500);
      res.end(healthy ? "up" : "down");
    });
    open.push(s);
    const breaker = circuitBreaker({
      volumeThreshold: 4,
      errorThresholdPercentage: 50,
      resetTimeout: 200,
    });
    open.push({ close: async () => breaker.shutdown() });
    const agent = new Agent();
    open.push(agent);
    const d = agent.compose(breaker);
    const ev = collect([channels.breaker, channels.breakerRejected]);

    const opened = nextState("open");
    for (let i = 0; i < 4; i++) {
      const res = await request(s.origin, { dispatcher: d });
      expect(res.statusCode).toBe(500);
      await res.body.dump();
    }
    await opened;
    expect(breaker.state(s.origin)).toBe("open");

    // Open: fails fast, nothing reaches the server.
    const halfOpened = nextState("half-open");
    const err = await request(s.origin, { dispatcher: d }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CircuitOpenError);
    expect(err).toMatchObject({ code: "MESH_RETRY_CIRCUIT_OPEN", breaker: s.origin });
    expect(s.seen).toHaveLength(4);

    await halfOpened;
    healthy = true;
    const closed = nextState("closed");
    const probe = await request(s.origin, { dispatcher: d });
    expect(await probe.body.text()).toBe("up");
    await closed;
    expect(breaker.state(s.origin)).toBe("closed");
    ev.stop();

    expect(ev.events.map((e) => e.message)).toEqual([
      { name: s.origin, state: "open", previous: "closed" },
      { name: s.origin },
      { name: s.origin, state: "half-open", previous: "open" },
      { name: s.origin, state: "closed", previous: "half-open" },
    ]);
  });

  it("a failed probe reopens the breaker; breakers are per origin", async () => {
    const bad = await http1Server(({ res }) => {
      res.writeHead(503);
      res.end();
    });
    const good = await http1Server(({ res }) => {
      res.end("ok");
    });
    open.push(bad, good);
    const breaker = circuitBreaker({ volumeThreshold: 2, resetTimeout: 100 });
    open.push({ close: async () => breaker.shutdown() });
    const agent = new Agent();
    open.push(agent);
    const d = agent.compose(breaker);
    const opened = nextState("open");
    for (let i = 0; i < 2; i++) await (await request(bad.origin, { dispatcher: d })).body.dump();
    await opened;
    expect(await (await request(good.origin, { dispatcher: d })).body.text()).toBe("ok");
    expect(breaker.state(good.origin)).toBe("closed");

    await nextState("half-open");
    const reopened = nextState("open");
    const probe = await request(bad.origin, { dispatcher: d });
    expect(probe.statusCode).toBe(503);
    await probe.body.dump();
    expect((await reopened).previous).toBe("half-open");
  });

  it("counts refused connections; retry() does not retry CircuitOpenError", async () => {
    const s = await http1Server(() => {});
    await s.close();
    const breaker = circuitBreaker({ volumeThreshold: 2, resetTimeout: 60_000 });
    open.push({ close: async () => breaker.shutdown() });
    const agent = new Agent();
    open.push(agent);
    const d = agent.compose(breaker, retry({ limit: 3, backoff: { base: 0, max: 0 } }));
    const ev = collect([channels.attempt]);
    const first = await request(s.origin, { dispatcher: d }).catch((e: unknown) => e);
    ev.stop();
    // Two refused attempts open the breaker; the third attempt fails fast and ends the request.
    expect(first).toBeInstanceOf(CircuitOpenError);
    expect(ev.events).toHaveLength(3);
  });

  it("validates options", () => {
    expect(() => circuitBreaker({ errorThresholdPercentage: 0 })).toThrow(
      "circuitBreaker.errorThresholdPercentage: expected a number in 1..100, got 0",
    );
    expect(() => circuitBreaker({ rollingCountTimeout: 1000, rollingCountBuckets: 7 })).toThrow(
      RangeError,
    );
  });
});
