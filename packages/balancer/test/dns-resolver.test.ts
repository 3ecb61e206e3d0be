import { promises as dns } from "node:dns";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { Balancer, dnsResolver, type ResolverUpdate } from "../src/index.js";
import { startDnsServer, type Zone } from "./dns-server.js";
import { startServer } from "./helpers.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function setup(zone: Zone) {
  const server = await startDnsServer(zone);
  cleanup.push(() => server.close());
  const resolver = new dns.Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([server.server]);
  return { server, resolver };
}

async function take(it: AsyncIterator<ResolverUpdate>): Promise<ResolverUpdate> {
  const r = await it.next();
  if (r.done) throw new Error("resolver ended");
  return r.value;
}

describe("dnsResolver against a real DNS server on loopback", () => {
  it("resolves A and AAAA records and re-resolves when the TTL expires", async () => {
    const zone: Zone = {
      "api.test": { A: [{ address: "10.1.0.1", ttl: 1 }], AAAA: [{ address: "fd00::1", ttl: 30 }] },
    };
    const { resolver } = await setup(zone);
    const it = dnsResolver({
      hostname: "api.test",
      port: 8080,
      resolver,
      template: { zone: "z1" },
    })[Symbol.asyncIterator]();
    cleanup.push(() => it.return?.());
    const first = await take(it);
    expect(first).toEqual({
      type: "endpoints",
      endpoints: [
        { address: "10.1.0.1:8080", zone: "z1" },
        { address: "[fd00::1]:8080", zone: "z1" },
      ],
    });
    zone["api.test"]!.A = [{ address: "10.1.0.2", ttl: 1 }];
    // The shortest TTL (1 s) drives the refresh; no fixed interval configured.
    const second = await take(it);
    expect(second.type === "endpoints" && second.endpoints.map((e) => e.address)).toEqual([
      "10.1.0.2:8080",
      "[fd00::1]:8080",
    ]);
  });

  it("resolves SRV records for targets and ports, lowest priority group, weights kept", async () => {
    const { resolver } = await setup({
      "_http._tcp.api.test": {
        SRV: [
          { priority: 1, weight: 10, port: 9001, target: "a.api.test", ttl: 30 },
          { priority: 1, weight: 30, port: 9002, target: "b.api.test", ttl: 30 },
          { priority: 2, weight: 10, port: 9003, target: "c.api.test", ttl: 30 },
        ],
      },
      "a.api.test": { A: [{ address: "10.2.0.1", ttl: 30 }] },
      "b.api.test": { A: [{ address: "10.2.0.2", ttl: 30 }] },
      "c.api.test": { A: [{ address: "10.2.0.3", ttl: 30 }] },
    });
    const it = dnsResolver({ hostname: "_http._tcp.api.test", srv: true, family: 4, resolver })[
      Symbol.asyncIterator
    ]();
    cleanup.push(() => it.return?.());
    expect(await take(it)).toEqual({
      type: "endpoints",
      endpoints: [
        { address: "10.2.0.1:9001", weight: 10 },
        { address: "10.2.0.2:9002", weight: 30 },
      ],
    });
  });

  it("re-resolves SRV on the SRV record's own TTL when it is shorter than the addresses'", async () => {
    const zone: Zone = {
      "_http._tcp.ttl.test": {
        SRV: [{ priority: 1, weight: 1, port: 9001, target: "a.ttl.test", ttl: 1 }],
      },
      "a.ttl.test": { A: [{ address: "10.3.0.1", ttl: 300 }] },
    };
    const { resolver } = await setup(zone);
    const it = dnsResolver({ hostname: "_http._tcp.ttl.test", srv: true, family: 4, resolver })[
      Symbol.asyncIterator
    ]();
    cleanup.push(() => it.return?.());
    const first = await take(it);
    expect(first.type === "endpoints" && first.endpoints.map((e) => e.address)).toEqual([
      "10.3.0.1:9001",
    ]);
    const at = performance.now();
    zone["_http._tcp.ttl.test"]!.SRV = [
      { priority: 1, weight: 1, port: 9002, target: "a.ttl.test", ttl: 1 },
    ];
    // The SRV TTL (1 s) drives the refresh; the address TTL (300 s, clamped to maxTtlMs 30 s)
    // would have kept the old port for 30 s.
    const second = await take(it);
    expect(second.type === "endpoints" && second.endpoints.map((e) => e.address)).toEqual([
      "10.3.0.1:9002",
    ]);
    expect(performance.now() - at).toBeLessThan(15_000);
  });

  it("the shorter address TTL still wins over a long SRV TTL", async () => {
    const zone: Zone = {
      "_http._tcp.addr.test": {
        SRV: [{ priority: 1, weight: 1, port: 9001, target: "a.addr.test", ttl: 300 }],
      },
      "a.addr.test": { A: [{ address: "10.4.0.1", ttl: 1 }] },
    };
    const { resolver } = await setup(zone);
    const it = dnsResolver({ hostname: "_http._tcp.addr.test", srv: true, family: 4, resolver })[
      Symbol.asyncIterator
    ]();
    cleanup.push(() => it.return?.());
    await take(it);
    zone["a.addr.test"]!.A = [{ address: "10.4.0.2", ttl: 1 }];
    const second = await take(it);
    expect(second.type === "endpoints" && second.endpoints.map((e) => e.address)).toEqual([
      "10.4.0.2:9001",
    ]);
  });

  it("without an answer to the SRV TTL query, the address TTLs drive the refresh", async () => {
    const zone: Zone = {
      "_http._tcp.fb.test": {
        SRV: [{ priority: 1, weight: 1, port: 9001, target: "a.fb.test", ttl: 1 }],
      },
      "a.fb.test": { A: [{ address: "10.5.0.1", ttl: 1 }] },
    };
    const { resolver: real } = await setup(zone);
    // Records still come from the real resolver; the direct TTL query goes nowhere.
    const resolver = {
      resolve4: real.resolve4.bind(real),
      resolve6: real.resolve6.bind(real),
      resolveSrv: real.resolveSrv.bind(real),
      getServers: () => ["bad server"],
    };
    const it = dnsResolver({ hostname: "_http._tcp.fb.test", srv: true, family: 4, resolver })[
      Symbol.asyncIterator
    ]();
    cleanup.push(() => it.return?.());
    await take(it);
    zone["a.fb.test"]!.A = [{ address: "10.5.0.2", ttl: 1 }];
    const second = await take(it);
    expect(second.type === "endpoints" && second.endpoints.map((e) => e.address)).toEqual([
      "10.5.0.2:9001",
    ]);
  });

  it("a failing lookup reports an error and never empties the balancer's healthy set", async () => {
    const http = await startServer();
    cleanup.push(() => http.close());
    const zone: Zone = { "web.test": { A: [{ address: "127.0.0.1", ttl: 30 }] } };
    const { resolver } = await setup(zone);
    const errors: Error[] = [];
    let sawError: () => void = () => {};
    const errored = new Promise<void>((r) => {
      sawError = r;
    });
    const b = new Balancer({
      endpoints: dnsResolver({
        hostname: "web.test",
        port: http.port,
        family: 4,
        resolver,
        maxTtlMs: 50,
        minTtlMs: 0,
      }),
      onResolverError: (e) => {
        errors.push(e);
        sawError();
      },
    });
    cleanup.push(() => b.destroy());
    const r = await request("http://web.test/", { dispatcher: b });
    expect(r.statusCode).toBe(200);
    await r.body.text();
    delete zone["web.test"]; // NXDOMAIN from now on
    await errored;
    expect(errors[0]!.message).toMatch(/^dns:web\.test:\d+: /);
    expect(b.snapshot().resolver).toMatchObject({ source: `dns:web.test:${http.port}` });
    expect(b.snapshot().resolver!.lastError).toMatch(/ENOTFOUND|no addresses/);
    expect(b.snapshot().endpoints.map((e) => e.state)).toEqual(["ready"]);
    const again = await request("http://web.test/", { dispatcher: b });
    expect(again.statusCode).toBe(200);
    await again.body.text();
  });

  it("rejects bad options naming the field", () => {
    expect(() => dnsResolver({ hostname: "api.test" })).toThrow(
      "port: expected an integer in 1..65535 (or srv: true), got undefined",
    );
    expect(() => dnsResolver({ hostname: "api.test", port: 70000 })).toThrow(
      "port: expected an integer in 1..65535, got 70000",
    );
    expect(() => dnsResolver({ hostname: "bad name!", port: 1 })).toThrow(
      'hostname: expected a DNS name, got "bad name!"',
    );
    expect(() => dnsResolver({ hostname: "a.test", port: 1, intervalMs: -5 })).toThrow(
      /^intervalMs: expected a duration/,
    );
  });
});
