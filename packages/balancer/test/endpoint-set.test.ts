import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Endpoint,
  type EndpointInit,
  EndpointSet,
  type EndpointSetOptions,
  seededRandom,
} from "../src/index.js";
import { FakeClock } from "./helpers.js";
import { type Behaviour, closedLoop, finish } from "./simulation.js";

function set(clock: FakeClock, options: EndpointSetOptions = {}): EndpointSet {
  return new EndpointSet({ clock, random: seededRandom(1), ...options });
}

describe("EndpointSet selection", () => {
  it("uses a single ready endpoint directly and returns undefined when none is ready", () => {
    const clock = new FakeClock();
    const s = set(clock);
    expect(s.pick()).toBeUndefined();
    s.update(["10.0.0.1:80"]);
    expect(s.pick()?.address).toBe("10.0.0.1:80");
  });

  it("P2C prefers the cheaper endpoint: a slow endpoint gets almost nothing", () => {
    const clock = new FakeClock();
    const s = set(clock);
    s.update(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      clock.advance(1);
      const e = s.pick()!;
      counts.set(e.address, (counts.get(e.address) ?? 0) + 1);
      s.start(e);
      finish(s, e, e.address === "10.0.0.3:80" ? 50 : 5, true);
    }
    expect(counts.get("10.0.0.3:80") ?? 0).toBeLessThan(3000 * 0.05);
  });

  it("P2C compares two distinct endpoints (never the same twice)", () => {
    // With two endpoints, P2C must always compare both, so the cheaper one always wins.
    const clock = new FakeClock();
    const s = set(clock);
    s.update(["10.0.0.1:80", "10.0.0.2:80"]);
    const busy = s.get("10.0.0.1:80")!;
    s.start(busy);
    for (let i = 0; i < 200; i++) expect(s.pick()!.address).toBe("10.0.0.2:80");
  });

  it("round-robin and least-pending are selectable behind the same interface", () => {
    const clock = new FakeClock();
    const rr = set(clock, { strategy: "round-robin" });
    rr.update(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
    expect([1, 2, 3, 4].map(() => rr.pick()!.address)).toEqual([
      "10.0.0.1:80",
      "10.0.0.2:80",
      "10.0.0.3:80",
      "10.0.0.1:80",
    ]);
    const lp = set(clock, { strategy: "least-pending" });
    lp.update(["10.0.0.1:80", "10.0.0.2:80"]);
    lp.start(lp.get("10.0.0.1:80")!);
    expect(lp.pick()!.address).toBe("10.0.0.2:80");
    expect(lp.selector.name).toBe("least-pending");
  });

  it("weight divides the cost: weight 3 takes most of the load among equals", () => {
    const clock = new FakeClock();
    const s = set(clock);
    s.update([{ address: "10.0.0.1:80", weight: 3 }, "10.0.0.2:80"]);
    const inflight: Endpoint[] = [];
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const e = s.pick()!;
      counts.set(e.address, (counts.get(e.address) ?? 0) + 1);
      s.start(e);
      inflight.push(e);
      if (inflight.length > 8) finish(s, inflight.shift()!, 30, true);
    }
    expect(counts.get("10.0.0.1:80")!).toBeGreaterThan(counts.get("10.0.0.2:80")! * 2);
  });
});

describe("EndpointSet failure accrual", () => {
  it("ejects after 7 consecutive failures, probes after the penalty, restores on success", () => {
    const clock = new FakeClock();
    const s = set(clock, { accrual: { jitter: 0 } });
    s.update(["10.0.0.1:80", "10.0.0.2:80"]);
    const bad = s.get("10.0.0.1:80")!;
    for (let i = 0; i < 6; i++) {
      s.start(bad);
      finish(s, bad, 1, false);
    }
    expect(bad.state).toBe("ready");
    s.start(bad);
    finish(s, bad, 1, false);
    expect(bad.state).toBe("ejected");
    expect(s.nextProbeAt).toBe(1000);
    for (let i = 0; i < 100; i++) expect(s.pick()!.address).toBe("10.0.0.2:80");
    clock.advance(1000);
    const probe = s.pick()!;
    expect(probe).toBe(bad);
    expect(bad.state).toBe("probing");
    // Only one probe: while it is in flight the endpoint is not picked again.
    for (let i = 0; i < 50; i++) expect(s.pick()).not.toBe(bad);
    s.start(bad);
    finish(s, bad, 1, false);
    expect(bad.state).toBe("ejected");
    expect(s.nextProbeAt).toBe(3000); // second penalty doubles: 2 s
    clock.advance(2000);
    expect(s.pick()).toBe(bad);
    s.start(bad);
    finish(s, bad, 1, true);
    expect(bad.state).toBe("ready");
  });

  it("penalties back off exponentially from 1 s to 60 s with up to 50% jitter", () => {
    const clock = new FakeClock();
    const s = set(clock, { random: () => 0.999999 });
    s.update(["10.0.0.1:80"]);
    const e = s.get("10.0.0.1:80")!;
    const penalties = [0, 1, 2, 5, 6, 10].map((k) => e.accrual!.penaltyMs(k));
    expect(penalties[0]).toBeCloseTo(1500, 0);
    expect(penalties[1]).toBeCloseTo(3000, 0);
    expect(penalties[2]).toBeCloseTo(6000, 0);
    expect(penalties[3]).toBeCloseTo(48_000, 0);
    expect(penalties[4]).toBe(60_000);
    expect(penalties[5]).toBe(60_000);
  });

  it("property: an ejected endpoint is never picked before its probe is due", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("pick" as const) }),
      fc.record({ kind: fc.constant("fail" as const), i: fc.nat(4) }),
      fc.record({ kind: fc.constant("ok" as const), i: fc.nat(4) }),
      fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 3000 }) }),
      fc.record({ kind: fc.constant("remove" as const), i: fc.nat(4) }),
      fc.record({ kind: fc.constant("add" as const), i: fc.nat(4) }),
    );
    fc.assert(
      fc.property(fc.integer(), fc.array(op, { maxLength: 300 }), (seed, ops) => {
        const clock = new FakeClock();
        const addrs = [0, 1, 2, 3, 4].map((i) => `10.0.0.${i + 1}:80`);
        const s = set(clock, { random: seededRandom(seed), accrual: { consecutiveFailures: 2 } });
        s.update(addrs);
        for (const o of ops) {
          if (o.kind === "tick") clock.advance(o.ms);
          else if (o.kind === "add") s.add(addrs[o.i]!);
          else if (o.kind === "remove") s.remove(addrs[o.i]!);
          else if (o.kind === "pick") {
            const before = new Map(
              [...s.endpoints()].map((e) => [e, { state: e.state, probeAt: e.accrual!.probeAt }]),
            );
            const e = s.pick();
            if (e) {
              const was = before.get(e)!;
              expect(
                was.state === "ready" || (was.state === "ejected" && was.probeAt <= clock.now()),
              ).toBe(true);
              expect(["ready", "probing"]).toContain(e.state);
              s.start(e);
              finish(s, e, 5, true);
            }
          } else {
            const e = s.get(addrs[o.i]!);
            if (e && e.state !== "removed") {
              s.start(e);
              finish(s, e, 1, o.kind === "ok");
            }
          }
        }
      }),
    );
  });
});

describe("failures raise cost without compounding", () => {
  const healthy = (rttMs: number): Behaviour => ({ rttMs });
  /** Fails every `every`-th request, in 1 ms; succeeds in 50 ms otherwise. */
  const fastFailer = (every: number): Behaviour => ({
    rttMs: 50,
    failRttMs: 1,
    fails: (n) => n % every === 0,
  });

  it("an endpoint failing fast gets a tiny share (Linkerd #11669)", () => {
    // 5 endpoints, healthy ones answer in 50 ms, 16 requests in flight (fair share 20 %).
    // The bad endpoint fails every request, every 2nd, every 3rd, each failure in 1 ms.
    for (const every of [1, 2, 3]) {
      const behaviours = [1, 2, 3, 4].map(() => healthy(50)).concat(fastFailer(every));
      const run = (options: EndpointSetOptions) =>
        closedLoop(behaviours, { concurrency: 16, total: 20_000, options }).shares[4]!;
      // The problem: plain Peak-EWMA (failures are fast samples) sends it more than its share.
      expect(run({ failureRate: { failureCostFactor: 0 } })).toBeGreaterThan(0.2);
      // With the failure-rate multiplier it gets under 1 % (0.3-0.6 %).
      expect(run({})).toBeLessThan(0.01);
    }
  });

  it("a fast endpoint failing 10 % beats one 10x slower; the slow one gets the least", () => {
    // 3 healthy 10 ms, one healthy 100 ms, one 10 ms failing 10 % (seeded), 16 in flight.
    const behaviours: Behaviour[] = [
      healthy(10),
      healthy(10),
      healthy(10),
      healthy(100),
      { rttMs: 10, fails: (_n, random) => random() < 0.1 },
    ];
    const { shares, set } = closedLoop(behaviours, { concurrency: 16, total: 100_000 });
    const [slow, flaky] = [shares[3]!, shares[4]!];
    expect(Math.min(...shares)).toBe(slow);
    expect(flaky).toBeGreaterThan(slow);
    expect(flaky).toBeGreaterThan(0.05);
    expect(slow).toBeLessThan(0.03);
    // Failures do not compound: the flaky endpoint's RTT estimate stays at its RTT, the
    // failure rate converges to the true 10 % (the prior is negligible at this traffic).
    const snap = set.snapshot().find((e) => e.address === "10.0.0.5:80")!;
    expect(snap.rttMs).toBeCloseTo(10, 1);
    expect(snap.failureRate).toBeGreaterThan(0.07);
    expect(snap.failureRate).toBeLessThan(0.13);
  });

  /**
   * Open loop on a fake clock: 5 endpoints answering in 10 ms, one request every 200 ms
   * (1 rps per endpoint), sequential. With `failAt`, the first request to endpoint 1 after that
   * time fails. Returns the times endpoint 1 answered, and when it failed.
   */
  function lowTraffic(failAt: number): { hits: number[]; failedAt: number } {
    const clock = new FakeClock();
    const s = set(clock, { random: seededRandom(3), accrual: false });
    const endpoints = [1, 2, 3, 4, 5].map((i) => s.add(`10.0.0.${i}:80`));
    const hits: number[] = [];
    let failedAt = -1;
    for (let k = 0; k < 600; k++) {
      clock.t = k * 200;
      const e = s.pick()!;
      s.start(e);
      clock.advance(10);
      const fail = e === endpoints[0] && failedAt < 0 && clock.t >= failAt;
      if (fail) failedAt = clock.t;
      finish(s, e, 10, !fail);
      if (e === endpoints[0]) hits.push(clock.t);
    }
    return { hits, failedAt };
  }

  it("one isolated failure at 1 rps does not starve an endpoint", () => {
    const { hits, failedAt } = lowTraffic(30_000);
    const control = lowTraffic(Number.POSITIVE_INFINITY).hits;
    const between = (list: number[], a: number, b: number) =>
      list.filter((t) => t > failedAt + a && t <= failedAt + b).length;
    // Picked again within a few seconds of the failure...
    const next = hits.find((t) => t > failedAt)!;
    expect(next - failedAt).toBeLessThanOrEqual(6_000);
    // ...and back to its fair share (1 rps, as without the failure) 20 s after it; the traffic
    // it did not get in the meantime is about 10 s worth (with a 10 s failure decay: 25 s).
    expect(between(hits, 20_000, 80_000)).toBeGreaterThanOrEqual(
      0.9 * between(control, 20_000, 80_000),
    );
    expect(between(control, 0, 40_000) - between(hits, 0, 40_000)).toBeLessThanOrEqual(12);
  });
});

describe("EndpointSet live changes", () => {
  it("drains a removed endpoint: no new picks, removed once pending reaches zero", () => {
    const clock = new FakeClock();
    const states: string[] = [];
    const s = set(clock, { onStateChange: (_e, st) => states.push(st) });
    s.update(["10.0.0.1:80", "10.0.0.2:80"]);
    const e = s.get("10.0.0.1:80")!;
    s.start(e);
    s.update(["10.0.0.2:80"]);
    expect(e.state).toBe("draining");
    for (let i = 0; i < 50; i++) expect(s.pick()).not.toBe(e);
    finish(s, e, 5, true);
    expect(e.state).toBe("removed");
    expect(s.size).toBe(1);
    expect(states).toEqual(["ready", "ready", "draining", "removed"]);
  });

  it("re-weights live and validates the whole update before changing anything", () => {
    const clock = new FakeClock();
    const s = set(clock);
    s.update(["10.0.0.1:80"]);
    s.setWeight("10.0.0.1:80", 5);
    expect(s.get("10.0.0.1:80")!.weight).toBe(5);
    expect(() => s.update(["10.0.0.2:80", { address: "10.0.0.3:80", weight: -1 }])).toThrow(
      "endpoints[1].weight: expected a number in 0 (exclusive)..1000000, got -1",
    );
    expect([...s.endpoints()].map((e) => e.address)).toEqual(["10.0.0.1:80"]);
  });
});

// A resolver sends the whole set on every change (a Kubernetes Service: every slice update);
// endpoints sent again unchanged keep their metadata object (no address parse, no new
// long-lived object per endpoint per update), and any change still applies.
describe("EndpointSet.update with the full set again", () => {
  const init = (i: number, extra: Partial<EndpointInit> = {}): EndpointInit => ({
    address: `10.0.0.${i}:8080`,
    protocol: "http1",
    zone: "zone-a",
    labels: { pod: `web-${i}`, node: "n1" },
    ...extra,
  });

  it("keeps the metadata of unchanged endpoints, takes every change", () => {
    const s = set(new FakeClock());
    s.update([init(1), init(2), "10.0.0.3:8080", "https://10.0.0.4:8443"]);
    const before = [1, 2, 3].map((i) => s.get(`10.0.0.${i}:8080`)!.info);
    const tls = s.get("https://10.0.0.4:8443")!.info;
    // Fresh objects, equal content: the same metadata objects stay.
    s.update([init(1), init(2), "10.0.0.3:8080", "https://10.0.0.4:8443"]);
    expect([1, 2, 3].map((i) => s.get(`10.0.0.${i}:8080`)!.info)).toEqual(before);
    for (let i = 0; i < 3; i++) expect(s.get(`10.0.0.${i + 1}:8080`)!.info).toBe(before[i]);
    expect(s.get("https://10.0.0.4:8443")!.info).toEqual(tls);

    // Each field that changes is taken.
    s.update([
      init(1, { labels: { pod: "web-1", node: "n2" } }),
      init(2, { weight: 3, zone: "zone-b", identity: "spiffe://td/ns/a/sa/b", protocol: "h2" }),
      { address: "10.0.0.3:8080", labels: { pod: "web-3" } },
      "http://10.0.0.4:8443",
    ]);
    expect(s.get("10.0.0.1:8080")!.info.labels).toEqual({ pod: "web-1", node: "n2" });
    expect(s.get("10.0.0.2:8080")!.info).toMatchObject({
      weight: 3,
      zone: "zone-b",
      identity: "spiffe://td/ns/a/sa/b",
      protocol: "h2",
    });
    expect(s.get("10.0.0.3:8080")!.info.labels).toEqual({ pod: "web-3" });
    // The https endpoint is another endpoint than the http one on the same address.
    expect([...s.endpoints()].map((e) => [e.info.origin, e.state])).toContainEqual([
      "http://10.0.0.4:8443",
      "ready",
    ]);
    // Labels dropped, and invalid input still rejected when the address is known.
    s.update([init(1, { labels: undefined })]);
    expect(s.get("10.0.0.1:8080")!.info.labels).toBeUndefined();
    expect(() => s.update([init(1, { weight: -1 })])).toThrow(/weight/);
    expect(() =>
      s.update([init(1, { labels: { pod: 1 } as unknown as Record<string, string> })]),
    ).toThrow(/labels\.pod/);
  });

  it("property: re-applying a set gives the same metadata as a fresh set", () => {
    const arb: fc.Arbitrary<EndpointInit[]> = fc.array(
      fc.record(
        {
          address: fc.constantFrom(
            "10.0.0.1:80",
            "10.0.0.2:80",
            "[::1]:80",
            "https://h.example:443",
          ),
          weight: fc.constantFrom(1, 2),
          zone: fc.constantFrom("a", "b"),
          labels: fc.constantFrom<Record<string, string>>(
            { pod: "p" },
            { pod: "q" },
            { pod: "p", node: "n" },
          ),
        },
        { requiredKeys: ["address"] },
      ),
      { maxLength: 4 },
    );
    fc.assert(
      fc.property(arb, arb, (first, second) => {
        const s = set(new FakeClock());
        s.update(first);
        s.update(second);
        const fresh = set(new FakeClock());
        fresh.update(second);
        const live = (x: EndpointSet) =>
          [...x.endpoints()]
            .filter((e) => e.state !== "draining")
            .map((e) => ({ ...e.info }))
            .sort((a, b) => (a.origin < b.origin ? -1 : 1));
        expect(live(s)).toEqual(live(fresh));
      }),
    );
  });
});
