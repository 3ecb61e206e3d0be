import { request } from "undici";
import { afterEach, describe, expect, test } from "vitest";
import { createLogger, MeshProxy, validateConfig } from "../src/index.js";
import { Backend, type BackendSettings } from "../src/outbound/backend.js";
import { h1App } from "./helpers.js";

/*
 * The service's `balancer` settings reach @mesh/balancer: real requests to real loopback
 * servers through a Backend built from a parsed config, read back from its snapshot (what
 * the admin `/endpoints` page serves).
 */

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

/** An HTTP/1.1 server answering `status` after at least `delayMs`. */
async function app(status: number, delayMs = 0) {
  const a = await h1App((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(status);
      res.end();
    }, delayMs);
  });
  closers.push(() => a.close());
  return a;
}

function backendFor(
  service: Record<string, unknown>,
  outbound: Record<string, unknown> = {},
): Backend {
  const r = validateConfig({ outbound: { ...outbound, services: [{ name: "api", ...service }] } });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  const svc = r.config.outbound!.services[0]!;
  const settings: BackendSettings = {
    connectTimeout: 1_000,
    connectionsPerEndpoint: 100,
    maxPendingPerEndpoint: 1_000,
    failFast: svc.failFast,
    failureAccrual: svc.failureAccrual,
    balancer: svc.balancer,
  };
  const backend = new Backend("api", svc.discovery!, settings);
  closers.push(() => backend.close());
  return backend;
}

async function send(backend: Backend, times: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < times; i++) {
    const res = await request("http://api/", { dispatcher: backend.dispatcher("http1") });
    await res.body.dump();
    statuses.push(res.statusCode);
  }
  return statuses;
}

describe("service balancer settings", () => {
  test("a running proxy passes services[].balancer to its balancer (admin /endpoints)", async () => {
    const a = await app(200);
    const b = await app(200);
    const r = validateConfig({
      admin: { listen: "127.0.0.1:0" },
      outbound: {
        listen: "127.0.0.1:0",
        services: [
          {
            name: "api",
            discovery: { static: [a.address, b.address] },
            balancer: { ewma: { defaultRtt: "400ms", decay: "1h" } },
          },
        ],
      },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const proxy = await MeshProxy.start({ config: r.config, logger: createLogger("silent") });
    closers.push(() => proxy.shutdown(1_000));
    const res = await request(`http://${proxy.addresses.outbound}/`, { headers: { host: "api" } });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    const page = (await (
      await request(`http://${proxy.addresses.admin}/endpoints`)
    ).body.json()) as {
      backends: { endpoints: { requests: number; rttMs: number }[] }[];
    }[];
    const idle = page[0]!.backends[0]!.endpoints.find((e) => e.requests === 0);
    // Not the balancer's 30 ms default: the configured 400 ms start, kept by the 1 h decay.
    expect(idle?.rttMs).toBeGreaterThan(399);
  });

  test("ewma.defaultRtt and ewma.decay set the estimate of an endpoint not yet used", async () => {
    const untouchedRtt = async (decay: string) => {
      const a = await app(200, 30);
      const b = await app(200, 30);
      const backend = backendFor({
        discovery: { static: [a.address, b.address] },
        balancer: { ewma: { defaultRtt: "400ms", decay } },
      });
      // One request (≥ 30 ms): the other endpoint keeps its default RTT, decayed over that time.
      expect(await send(backend, 1)).toEqual([200]);
      const idle = backend.snapshot().find((e) => e.requests === 0);
      return idle?.rttMs;
    };
    // A one-hour decay keeps the 400 ms start; a 1 ms decay has reached the 1 ms floor.
    const slow = await untouchedRtt("1h");
    expect(slow).toBeGreaterThan(399);
    expect(slow).toBeLessThanOrEqual(400);
    expect(await untouchedRtt("1ms")).toBe(1);
  });

  test("the default ewma starts new endpoints at 30 ms", async () => {
    const a = await app(200);
    const b = await app(200);
    const backend = backendFor({ discovery: { static: [a.address, b.address] } });
    expect(await send(backend, 1)).toEqual([200]);
    const idle = backend.snapshot().find((e) => e.requests === 0);
    expect(idle?.rttMs).toBeGreaterThan(15);
    expect(idle?.rttMs).toBeLessThanOrEqual(30);
  });

  test("failureAccrual.mode success-rate ejects an endpoint failing every 3rd request; the consecutive default does not", async () => {
    // Fails every 3rd request: never 7 (or 3) in a row, but a success rate of 2/3.
    let n = 0;
    const flaky = await h1App((req, res) => {
      req.resume();
      res.writeHead(++n % 3 === 0 ? 500 : 200);
      res.end();
    });
    closers.push(() => flaky.close());
    const accrual = (failureAccrual: Record<string, unknown>) =>
      backendFor({ discovery: { static: [flaky.address] }, failureAccrual });
    const consecutive = accrual({ consecutiveFailures: 3 });
    await send(consecutive, 30);
    expect(consecutive.snapshot()[0]?.state).toBe("ready");
    n = 0;
    const rate = accrual({
      mode: "success-rate",
      successRate: { threshold: 0.8, minRequests: 10, window: "1m" },
    });
    await send(rate, 12);
    expect(rate.snapshot()[0]?.state).toBe("ejected");
    const bad = validateConfig({
      outbound: {
        services: [
          {
            name: "api",
            discovery: { static: ["127.0.0.1:1"] },
            failureAccrual: { mode: "rate", successRate: { threshold: 2, minRequests: 0 } },
          },
        ],
      },
    });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.problems.map((p) => `${p.path}: ${p.message}`)).toEqual(
      expect.arrayContaining([
        'outbound.services[0].failureAccrual.mode: expected consecutive-failures or success-rate, got "rate"',
        "outbound.services[0].failureAccrual.successRate.threshold: expected a number in 0..1, got 2",
        "outbound.services[0].failureAccrual.successRate.minRequests: expected integer >= 1, got 0",
      ]),
    );
  });

  test("balancer.pushback caps how long an endpoint answering Retry-After is avoided; max 0 ignores it", async () => {
    const busy = await h1App((req, res) => {
      req.resume();
      res.writeHead(503, { "retry-after": "30" });
      res.end();
    });
    closers.push(() => busy.close());
    const capped = backendFor({
      discovery: { static: [busy.address] },
      balancer: { pushback: { max: "2s" } },
    });
    expect(await send(capped, 1)).toEqual([503]);
    const [e] = capped.snapshot();
    expect(e?.pushbackInMs).toBeGreaterThan(1_900);
    expect(e?.pushbackInMs).toBeLessThanOrEqual(2_000);
    const off = backendFor({
      discovery: { static: [busy.address] },
      balancer: { pushback: { max: 0 } },
    });
    expect(await send(off, 1)).toEqual([503]);
    expect(off.snapshot()[0]?.pushbackInMs).toBeUndefined();
  });

  test("failureRate.prior and failureCostFactor shape the failure cost", async () => {
    const failing = await app(500);
    const tuned = backendFor({
      discovery: { static: [failing.address] },
      balancer: { failureRate: { prior: 0, failureCostFactor: 2, decay: "1h" } },
    });
    expect(await send(tuned, 2)).toEqual([500, 500]);
    const [e] = tuned.snapshot();
    // prior 0: two failures out of two responses read as a rate of 1 …
    expect(e?.failureRate).toBeCloseTo(1, 3);
    // … and the cost is rtt × (pending + 1) × exp(2 × 1).
    expect(e!.cost / e!.rttMs).toBeCloseTo(Math.exp(2), 2);

    const defaults = backendFor({ discovery: { static: [failing.address] } });
    expect(await send(defaults, 2)).toEqual([500, 500]);
    const [d] = defaults.snapshot();
    // The default prior of 10 pseudo-successes: 2 / 12, cost × exp(15 × 2/12).
    expect(d?.failureRate).toBeCloseTo(2 / 12, 2);
    expect(d!.cost / d!.rttMs).toBeCloseTo(Math.exp(15 * d!.failureRate), 2);
  });

  test("outbound.zone keeps traffic in the proxy's zone and spills over when it is gone", async () => {
    const local = await app(200);
    const remote = await app(200);
    const backend = backendFor(
      {
        discovery: {
          static: [
            { address: local.address, zone: "eu-1a" },
            // Weight 100 makes it far cheaper: without zones it would take every request.
            { address: remote.address, zone: "eu-1b", weight: 100 },
          ],
        },
      },
      { zone: "eu-1a" },
    );
    expect(await send(backend, 20)).toEqual(Array(20).fill(200));
    const byZone = (zone: string) => backend.snapshot().find((e) => e.zone === zone)?.requests ?? 0;
    expect(byZone("eu-1a")).toBe(20);
    expect(byZone("eu-1b")).toBe(0);
    // The local endpoint leaves discovery: requests spill over to the other zone.
    backend.update({ static: [{ address: remote.address, zone: "eu-1b", weight: 100 }] });
    expect(await send(backend, 5)).toEqual(Array(5).fill(200));
    expect(byZone("eu-1b")).toBe(5);
  });
});
