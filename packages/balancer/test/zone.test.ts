import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";
import fc from "fast-check";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import {
  Balancer,
  type Endpoint,
  EndpointSet,
  type EndpointSetOptions,
  seededRandom,
  type ZoneEvent,
} from "../src/index.js";
import { FakeClock, startServer } from "./helpers.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

function zoneEvents(): ZoneEvent[] {
  const events: ZoneEvent[] = [];
  const listener = (m: unknown) => {
    events.push(m as ZoneEvent);
  };
  subscribe(meshChannels.balancer.zone, listener);
  cleanup.push(() => unsubscribe(meshChannels.balancer.zone, listener));
  return events;
}

const A1 = { address: "10.0.1.1:80", zone: "a" };
const A2 = { address: "10.0.1.2:80", zone: "a" };
const B1 = { address: "10.0.2.1:80", zone: "b" };
const B2 = { address: "10.0.2.2:80", zone: "b" };
const B3 = { address: "10.0.2.3:80", zone: "b" };

function zoned(clock: FakeClock, options: EndpointSetOptions = {}): EndpointSet {
  const s = new EndpointSet({ clock, random: seededRandom(3), localZone: "a", ...options });
  s.update([A1, A2, B1, B2, B3]);
  return s;
}

/** Sends `n` requests one at a time, each answered in `rttMs`; returns picks per zone. */
function sequential(s: EndpointSet, clock: FakeClock, n: number, rttMs = 5): Map<string, number> {
  const zones = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const e = s.pick()!;
    const z = e.info.zone ?? "-";
    zones.set(z, (zones.get(z) ?? 0) + 1);
    s.start(e);
    clock.advance(rttMs);
    s.responded(e, rttMs);
    s.settled(e, "success");
  }
  return zones;
}

describe("zone-local balancing (EndpointSet)", () => {
  it("picks only among the local zone's ready endpoints, with P2C between them", () => {
    const clock = new FakeClock();
    const s = zoned(clock);
    const picked = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const e = s.pick()!;
      picked.set(e.address, (picked.get(e.address) ?? 0) + 1);
      s.start(e);
      clock.advance(1);
      s.responded(e, e.address === A1.address ? 2 : 20);
    }
    expect([...picked.keys()].sort()).toEqual([A1.address, A2.address]);
    // P2C still works inside the zone: the faster local endpoint takes most of the traffic.
    expect(picked.get(A1.address)!).toBeGreaterThan(900);
    expect(s.zone).toEqual({ local: "a", ready: 2, pending: 0, spillover: false });
  });

  it("without localZone, zones are ignored", () => {
    const clock = new FakeClock();
    const s = new EndpointSet({ clock, random: seededRandom(3) });
    s.update([A1, A2, B1, B2, B3]);
    const zones = sequential(s, clock, 1000);
    expect(zones.get("b")).toBeGreaterThan(300);
    expect(s.zone).toBeUndefined();
  });

  it("spills over to every ready endpoint when no local endpoint is ready, and comes back", () => {
    const events = zoneEvents();
    const clock = new FakeClock();
    const s = zoned(clock, { accrual: { consecutiveFailures: 1, minPenaltyMs: 1_000, jitter: 0 } });
    // Both local endpoints fail once and are ejected.
    for (const address of [A1.address, A2.address]) {
      const e = s.get(address)!;
      s.start(e);
      s.responded(e, 1);
      s.settled(e, "failure");
    }
    expect(s.zone).toEqual({ local: "a", ready: 0, pending: 0, spillover: true });
    const zones = sequential(s, clock, 50, 5);
    expect(zones.get("a") ?? 0).toBe(0);
    expect(zones.get("b")).toBe(50);
    // 250 ms passed; at 1 s the probes are due. A probe that succeeds restores an endpoint
    // and picks return to the local zone.
    clock.advance(1_000);
    const probe = s.pick()!;
    expect(probe.info.zone).toBe("a");
    s.start(probe);
    s.responded(probe, 1);
    s.settled(probe, "success");
    // The next pick is the other local endpoint's probe; then both are ready and local.
    const after = sequential(s, clock, 50, 5);
    expect(after.get("b") ?? 0).toBe(0);
    expect(events.map((e) => [e.state, e.reason, e.localReady])).toEqual([
      ["spillover", "no-local-endpoint", 0],
      ["local", "recovered", 2],
    ]);
    expect(events[0]).toMatchObject({ balancer: "default", zone: "a", localPending: 0 });
  });

  it("spills over while the local zone averages more than localZoneMaxPending in flight", () => {
    const events = zoneEvents();
    const clock = new FakeClock();
    const s = zoned(clock, { localZoneMaxPending: 2 });
    const inflight: Endpoint[] = [];
    const send = () => {
      const e = s.pick()!;
      s.start(e);
      inflight.push(e);
      return e;
    };
    // 2 local endpoints × 2 = 4: up to 4 pending the zone is not overloaded (5 picks local).
    for (let i = 0; i < 5; i++) expect(send().info.zone).toBe("a");
    expect(s.zone).toMatchObject({ pending: 5, spillover: true });
    // Overloaded: P2C over all five ready endpoints, where the idle remote ones are cheaper.
    const spilled = Array.from({ length: 6 }, send);
    expect(spilled.some((e) => e.info.zone === "b")).toBe(true);
    const localSent = 5 + spilled.filter((e) => e.info.zone === "a").length;
    expect(s.zone).toMatchObject({ pending: localSent, spillover: true });
    // Local answers bring the average back to 2 or less: local again.
    for (const e of inflight.filter((x) => x.info.zone === "a")) {
      if (!s.zone!.spillover) break;
      clock.advance(5);
      s.responded(e, 5);
      s.settled(e, "success");
    }
    expect(s.zone).toMatchObject({ pending: 4, spillover: false });
    expect(send().info.zone).toBe("a");
    expect(events.map((e) => [e.state, e.reason, e.localReady, e.localPending])).toEqual([
      ["spillover", "overloaded", 2, 5],
      ["local", "recovered", 2, 4],
    ]);
  });

  it("follows zone changes and removals in updates", () => {
    const clock = new FakeClock();
    const s = zoned(clock);
    const busy = s.get(A1.address)!;
    s.start(busy);
    expect(s.zone).toMatchObject({ ready: 2, pending: 1 });
    // A1 moves to zone b with a request in flight; B1 moves to zone a.
    s.update([{ ...A1, zone: "b" }, A2, { ...B1, zone: "a" }, B2, B3]);
    expect(s.zone).toMatchObject({ ready: 2, pending: 0 });
    s.responded(busy, 1);
    expect(s.zone).toMatchObject({ ready: 2, pending: 0 });
    const zones = new Set(
      Array.from({ length: 200 }, () => {
        const e = s.pick()!;
        return e.address;
      }),
    );
    expect([...zones].sort()).toEqual([A2.address, B1.address]);
    // Removing the local endpoints (draining) spills over.
    s.update([{ ...A1, zone: "b" }, B2, B3]);
    expect(s.zone).toEqual({ local: "a", ready: 0, pending: 0, spillover: true });
    expect(s.pick()?.info.zone).toBe("b");
  });

  it("never picks outside the local zone while it has a ready endpoint and is not overloaded (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ zone: fc.constantFrom("a", "b", "c"), ms: fc.nat(50) }), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.nat(4),
        (endpoints, ops, maxPending) => {
          const clock = new FakeClock();
          const s = new EndpointSet({
            clock,
            random: seededRandom(11),
            localZone: "a",
            localZoneMaxPending: maxPending,
            accrual: { consecutiveFailures: 2 },
          });
          s.update(endpoints.map((e, i) => ({ address: `10.1.0.${i + 1}:80`, zone: e.zone })));
          const inflight: Endpoint[] = [];
          for (const op of ops) {
            clock.advance(op % 7);
            if (op % 3 === 0 && inflight.length > 0) {
              const e = inflight.splice(op % inflight.length, 1)[0]!;
              s.responded(e, op % 50);
              s.settled(e, op % 5 === 0 ? "failure" : "success");
              continue;
            }
            const before = s.zone!;
            const e = s.pick();
            if (e === undefined) continue;
            expect(e.state === "ready" || e.state === "probing").toBe(true);
            if (e.state === "ready" && !before.spillover) expect(e.info.zone).toBe("a");
            s.start(e);
            inflight.push(e);
          }
          // The local pending count always equals the sum over ready local endpoints.
          const local = [...s.endpoints()].filter(
            (e) => e.state === "ready" && e.info.zone === "a",
          );
          expect(s.zone).toMatchObject({
            ready: local.length,
            pending: local.reduce((n, e) => n + e.pending, 0),
          });
        },
      ),
      { seed: 42, numRuns: 200 },
    );
  });

  it("rejects bad zone options naming the field", () => {
    expect(() => new EndpointSet({ localZone: "" })).toThrow(
      'localZone: expected a non-empty string, got ""',
    );
    expect(() => new EndpointSet({ localZone: "a", localZoneMaxPending: -1 })).toThrow(
      "localZoneMaxPending: expected a number in 0..1000000, got -1",
    );
    expect(() => new Balancer({ localZone: 7 as unknown as string })).toThrow(
      "localZone: expected a non-empty string, got 7",
    );
  });
});

describe("zone-local balancing over loopback", () => {
  it("sends to the local zone, spills over when it is overloaded or gone", async () => {
    // Zone a's server holds its answers until released, so pending counts are exact.
    const held: (() => void)[] = [];
    const local = await startServer((_req, res) => {
      held.push(() => res.end("a"));
      return true;
    });
    const remote = await startServer();
    cleanup.push(
      () => local.close(),
      () => remote.close(),
    );
    const b = new Balancer({
      name: "zoned",
      localZone: "a",
      localZoneMaxPending: 1,
      endpoints: [
        { address: local.address, zone: "a" },
        { address: remote.address, zone: "b" },
      ],
    });
    cleanup.push(() => b.destroy());
    const get = async () => {
      const res = await request("http://svc.test/", { dispatcher: b });
      return res.body.text();
    };
    // Two requests (pending 0, then 1 ≤ 1) go local; the third finds the zone overloaded.
    const first = [get(), get()];
    const third = await get();
    expect(third).toBe(String(remote.port));
    expect(b.snapshot().zone).toEqual({ local: "a", ready: 1, pending: 2, spillover: true });
    while (held.length < 2) await new Promise((r) => setImmediate(r));
    for (const release of held.splice(0)) release();
    expect(await Promise.all(first)).toEqual(["a", "a"]);
    expect(b.snapshot().zone).toMatchObject({ pending: 0, spillover: false });
    // The local endpoint removed: everything spills over to zone b.
    b.remove(local.address);
    expect(await get()).toBe(String(remote.port));
    expect(b.snapshot().zone).toEqual({ local: "a", ready: 0, pending: 0, spillover: true });
  });
});
