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
