import { pushbackMs } from "@mesh/core";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { Balancer, EndpointSet, seededRandom } from "../src/index.js";
import { FakeClock, startServer, type TestServer } from "./helpers.js";
import { finish } from "./simulation.js";

/** How many of `n` sequential picks (each answered in 10 ms) go to each endpoint. */
function picks(set: EndpointSet, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const e = set.pick()!;
    set.start(e);
    finish(set, e, 10, true);
    counts.set(e.address, (counts.get(e.address) ?? 0) + 1);
  }
  return counts;
}

describe("pushback raises an endpoint's cost for as long as it asked (pure core)", () => {
  it("a pushed-back endpoint gets no traffic while P2C has a better choice, and all of its share back after", () => {
    const clock = new FakeClock();
    const set = new EndpointSet({ clock, random: seededRandom(3) });
    const [a, b] = [set.add("10.0.0.1:80"), set.add("10.0.0.2:80")];
    picks(set, 20);
    set.pushback(a!, 2_000);
    expect(set.snapshot().find((s) => s.address === a!.address)?.pushbackInMs).toBe(2_000);
    expect(picks(set, 200).get(a!.address)).toBeUndefined();
    clock.advance(2_000);
    expect(set.snapshot().find((s) => s.address === a!.address)?.pushbackInMs).toBeUndefined();
    const after = picks(set, 200);
    expect(after.get(a!.address)).toBeGreaterThan(60);
    expect(after.get(b!.address)).toBeGreaterThan(60);
  });

  it("is capped at pushback.maxMs, keeps the longer of two, and is off with pushback: false", () => {
    const clock = new FakeClock();
    const set = new EndpointSet({ clock, pushback: { maxMs: 5_000 } });
    const e = set.add("10.0.0.1:80");
    set.pushback(e, 3_600_000);
    expect(set.snapshot()[0]?.pushbackInMs).toBe(5_000);
    clock.advance(1_000);
    set.pushback(e, 1_000); // shorter than what is left: kept at 4 s
    expect(set.snapshot()[0]?.pushbackInMs).toBe(4_000);
    const off = new EndpointSet({ clock, pushback: false });
    const o = off.add("10.0.0.1:80");
    off.pushback(o, 5_000);
    expect(off.snapshot()[0]?.pushbackInMs).toBeUndefined();
  });

  it("bad options are named", () => {
    expect(() => new EndpointSet({ pushback: { costFactor: 0 } })).toThrow(
      "pushback.costFactor: expected a number in 1..1000000000000, got 0",
    );
    expect(() => new EndpointSet({ pushback: { maxMs: -1 } })).toThrow(
      "pushback.maxMs: expected a duration in ms in 0..2147483647, got -1",
    );
    expect(() => new EndpointSet({ pushback: { max: 1 } as never })).toThrow(/pushback/);
  });

  it("reads grpc-retry-pushback-ms before Retry-After; a negative gRPC pushback says nothing about time", () => {
    expect(pushbackMs({ "retry-after": "3" })).toBe(3_000);
    expect(
      pushbackMs(
        { "retry-after": "Wed, 21 Oct 2015 07:28:05 GMT" },
        Date.parse("Wed, 21 Oct 2015 07:28:00 GMT"),
      ),
    ).toBe(5_000);
    expect(pushbackMs({ "grpc-retry-pushback-ms": "250", "retry-after": "3" })).toBe(250);
    expect(pushbackMs({ "grpc-retry-pushback-ms": "-1" })).toBeUndefined();
    expect(pushbackMs({})).toBeUndefined();
  });
});

describe("pushback through the Balancer (real HTTP/1.1 endpoints)", () => {
  const open: (TestServer | Balancer)[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((x) => x.close()));
  });

  it("an endpoint answering 503 + Retry-After is avoided for that long", async () => {
    const busy = await startServer((_req, res) => {
      res.writeHead(503, { "retry-after": "30" });
      res.end("busy");
      return true;
    });
    const calm = await startServer();
    open.push(busy, calm);
    const balancer = new Balancer({ endpoints: [busy.address, calm.address], accrual: false });
    open.push(balancer);
    // Until busy has answered once, P2C may pick it; it says "come back in 30 s" then.
    while (busy.hits === 0)
      await (await request(`http://x/`, { dispatcher: balancer })).body.dump();
    const snap = balancer.snapshot().endpoints.find((e) => e.address === busy.address);
    expect(snap?.pushbackInMs).toBeGreaterThan(9_000); // capped at the default 10 s
    expect(snap?.pushbackInMs).toBeLessThanOrEqual(10_000);
    const before = busy.hits;
    for (let i = 0; i < 50; i++) {
      const res = await request(`http://x/`, { dispatcher: balancer });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    expect(busy.hits).toBe(before);
  });
});
