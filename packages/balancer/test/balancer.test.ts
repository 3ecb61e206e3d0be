import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { once } from "node:events";
import http2 from "node:http2";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import { meshChannels } from "@mesh/core";
import { fetch as fetch8, request } from "undici";
import { fetch as fetch7 } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  Balancer,
  type EndpointEvent,
  type FailFastEvent,
  NoEndpointsReadyError,
  seededRandom,
} from "../src/index.js";
import { selfSignedCert, startH2Server, startServer, type TestServer } from "./helpers.js";

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function servers(n: number): Promise<TestServer[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startServer()));
  for (const s of list) cleanup.push(() => s.close());
  return list;
}

function balancer(options: ConstructorParameters<typeof Balancer>[0]): Balancer {
  const b = new Balancer({ random: seededRandom(3), ...options });
  cleanup.push(() => b.destroy());
  return b;
}

/** Resolves with the first event on `mesh:balancer:endpoint` matching `match`. */
function nextEndpointEvent(match: (e: EndpointEvent) => boolean): Promise<EndpointEvent> {
  return new Promise((resolve) => {
    const listener = (message: unknown) => {
      const e = message as EndpointEvent;
      if (!match(e)) return;
      unsubscribe(meshChannels.balancer.endpoint, listener);
      resolve(e);
    };
    subscribe(meshChannels.balancer.endpoint, listener);
  });
}

const fetches = [
  ["undici 8 fetch", fetch8],
  ["undici 7 fetch", fetch7],
  ["Node global fetch (bundled undici 7)", globalThis.fetch],
] as const;

describe("Balancer as a dispatcher", () => {
  for (const [label, f] of fetches) {
    it(`works with ${label}, spreads load and keeps the request's authority`, async () => {
      const list = await servers(3);
      const b = balancer({ endpoints: list.map((s) => s.address) });
      const unseen = new Set(list.map((s) => String(s.port)));
      for (let i = 0; i < 60; i++) {
        const res = await (f as typeof fetch)(`http://api.internal:8080/x?i=${i}`, {
          dispatcher: b,
          headers: { "x-test": "1" },
        } as RequestInit);
        expect(res.status).toBe(200);
        unseen.delete(await res.text());
      }
      expect(unseen.size).toBe(0);
      expect(b.snapshot().endpoints.reduce((n, e) => n + e.requests, 0)).toBe(60);
    });
  }

  it("sends the logical authority as Host", async () => {
    let host: string | undefined;
    const s = await startServer((req, res) => {
      host = req.headers.host;
      res.end("ok");
      return true;
    });
    cleanup.push(() => s.close());
    const b = balancer({ endpoints: [s.address] });
    await (await fetch8("http://web.prod.svc:9000/", { dispatcher: b })).text();
    expect(host).toBe("web.prod.svc:9000");
    const r = await request("http://other.svc/", {
      dispatcher: b,
      headers: { host: "explicit.svc" },
    });
    await r.body.text();
    expect(host).toBe("explicit.svc");
  });

  it("works with undici request() including a request body", async () => {
    const s = await startServer((req, res) => {
      req.pipe(res);
      return true;
    });
    cleanup.push(() => s.close());
    const b = balancer({ endpoints: [s.address] });
    const r = await request("http://svc/echo", { method: "POST", body: "hello", dispatcher: b });
    expect(await r.body.text()).toBe("hello");
  });

  it("speaks HTTP/2 (h2c) to endpoints whose protocol hint is h2, with every fetch", async () => {
    const h2 = await startH2Server();
    cleanup.push(() => h2.close());
    const b = balancer({ endpoints: [{ address: h2.address, protocol: "h2" }] });
    const r = await request("http://grpc.svc/", { dispatcher: b });
    expect(await r.body.text()).toBe("h2 2.0 grpc.svc");
    for (const [, f] of fetches) {
      const res = await (f as typeof fetch)("http://grpc.svc/", { dispatcher: b } as RequestInit);
      expect(await res.text()).toBe("h2 2.0 grpc.svc");
    }
  });

  it("uses per-endpoint connect options (TLS with a private CA)", async ({ skip }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const { cert, key } = selfSignedCert("backend.test");
    const server = https.createServer({ cert, key }, (_req, res) => res.end("tls ok"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanup.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as AddressInfo).port;
    const b = balancer({
      endpoints: [
        { address: `https://127.0.0.1:${port}`, connect: { ca: cert, servername: "backend.test" } },
      ],
    });
    const res = await fetch8("http://backend.test/", { dispatcher: b });
    expect(await res.text()).toBe("tls ok");
    // Without the CA the same endpoint fails: the options really are per endpoint.
    const plain = balancer({ endpoints: [`https://127.0.0.1:${port}`], accrual: false });
    await expect(fetch8("http://backend.test/", { dispatcher: plain })).rejects.toThrow();
  });

  it("speaks HTTP/2 over TLS (ALPN h2) to an h2 endpoint with its connect options, trailers included", async ({
    skip,
  }) => {
    skip(missingPeer("openssl"), "needs openssl");
    const { cert, key } = selfSignedCert("grpc.test");
    const server = http2.createSecureServer({ cert, key });
    server.on("stream", (stream, headers) => {
      stream.resume();
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(`h2 over tls for ${headers[":authority"]}`);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanup.push(() => new Promise((r) => server.close(() => r(undefined))));
    const port = (server.address() as AddressInfo).port;
    const b = balancer({
      endpoints: [
        {
          address: `https://127.0.0.1:${port}`,
          protocol: "h2",
          connect: { ca: cert, servername: "grpc.test" },
        },
      ],
    });
    const res = await request("http://grpc.test/pkg.Svc/Call", {
      method: "POST",
      body: "x",
      dispatcher: b,
    });
    expect(await res.body.text()).toBe("h2 over tls for grpc.test");
    expect(res.trailers["grpc-status"]).toBe("0");
    await b.close();
  });

  it("calls a per-endpoint connector function for that endpoint only", async () => {
    const [a, c] = await servers(2);
    let connects = 0;
    const b = balancer({
      strategy: "round-robin",
      endpoints: [
        {
          address: a!.address,
          connect: (
            opts: { hostname: string; port: string },
            cb: (err: Error | null, s: net.Socket | null) => void,
          ) => {
            connects++;
            const sock = net.connect(Number(opts.port), opts.hostname, () => cb(null, sock));
            sock.once("error", (e) => cb(e, null));
          },
        },
        c!.address,
      ],
    });
    for (let i = 0; i < 4; i++) await (await fetch8("http://svc/", { dispatcher: b })).text();
    expect(connects).toBe(1);
    expect(a!.hits).toBe(2);
    expect(c!.hits).toBe(2);
  });

  it("measures the round trip from the connected socket: connection set-up is not latency", async () => {
    // The connector holds the TCP connection back for 300 ms; the server answers at once. If
    // connect time counted, the first sample (a peak) would put the estimate at >= 300 ms.
    const [a] = await servers(1);
    const HELD_MS = 300;
    const b = balancer({
      endpoints: [
        {
          address: a!.address,
          connect: (
            opts: { hostname: string; port: string },
            cb: (err: Error | null, s: net.Socket | null) => void,
          ) => {
            const sock = net.connect(Number(opts.port), opts.hostname, () =>
              setTimeout(() => cb(null, sock), HELD_MS),
            );
            sock.once("error", (e) => cb(e, null));
          },
        },
      ],
    });
    const started = performance.now();
    await (await fetch8("http://svc/", { dispatcher: b })).text();
    expect(performance.now() - started).toBeGreaterThanOrEqual(HELD_MS);
    const [endpoint] = b.snapshot().endpoints;
    expect(endpoint!.rttMs).toBeLessThan(HELD_MS);
  });
});

describe("Balancer endpoint churn", () => {
  it("adds and removes real servers under continuous load with zero failed requests", async () => {
    const initial = await servers(3);
    const b = balancer({ endpoints: initial.map((s) => s.address) });
    let ok = 0;
    let failed = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          const r = await request("http://svc/", { dispatcher: b });
          await r.body.text();
          if (r.statusCode === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    const live = [...initial];
    try {
      for (let round = 0; round < 6; round++) {
        const [fresh] = await servers(1);
        live.push(fresh!);
        b.update(live.map((s) => s.address));
        const old = live.shift()!;
        const removed = nextEndpointEvent(
          (e) => e.address === old.address && e.state === "removed",
        );
        b.update(live.map((s) => s.address));
        await removed;
        const before = ok;
        // Let traffic flow through the new set before the next change.
        while (ok < before + 50) await new Promise((r) => setImmediate(r));
        await old.close();
      }
    } finally {
      // Also on a failed step: the workers must not outlive the test.
      stop = true;
      await Promise.all(workers);
    }
    expect(failed).toBe(0);
    expect(ok).toBeGreaterThan(300);
    expect(
      b
        .snapshot()
        .endpoints.map((e) => e.address)
        .sort(),
    ).toEqual(live.map((s) => s.address).sort());
    for (const s of live) expect(s.hits).toBeGreaterThan(0);
  });

  it("close() lets requests in flight finish", async () => {
    let release: (() => void) | undefined;
    const s = await startServer((_req, res) => {
      release = () => res.end("late");
      return true;
    });
    cleanup.push(() => s.close());
    const b = new Balancer({ endpoints: [s.address] });
    const pending = request("http://svc/", { dispatcher: b });
    while (!release) await new Promise((r) => setImmediate(r));
    const closed = b.close();
    release();
    const r = await pending;
    expect(await r.body.text()).toBe("late");
    await closed;
    await expect(request("http://svc/", { dispatcher: b })).rejects.toMatchObject({
      code: "MESH_BALANCER_CLOSED",
    });
  });
});

describe("Balancer failure accrual over real sockets", () => {
  it("ejects a server answering 503, keeps traffic off it, probes and restores it", async () => {
    const [bad, good] = await servers(2);
    bad!.status = 503;
    // Round-robin keeps sending to the failing server (P2C would starve it through the
    // failure penalty first), so this isolates accrual itself.
    const b = balancer({
      strategy: "round-robin",
      endpoints: [bad!.address, good!.address],
      accrual: { minPenaltyMs: 200, jitter: 0 },
    });
    const ejected = nextEndpointEvent((e) => e.address === bad!.address && e.state === "ejected");
    let served = 0;
    while (b.endpoints.get(bad!.address)!.state !== "ejected") {
      await (await fetch8("http://svc/", { dispatcher: b })).text();
      served++;
      expect(served).toBeLessThan(2000);
    }
    const event = await ejected;
    expect(event).toMatchObject({
      balancer: "default",
      state: "ejected",
      reason: "consecutive-failures",
    });
    expect(bad!.hits).toBe(7);
    bad!.status = 200;
    const restored = nextEndpointEvent((e) => e.address === bad!.address && e.state === "ready");
    const before = bad!.hits;
    let done = false;
    void restored.then(() => {
      done = true;
    });
    // Keep traffic flowing; the probe is the first request after the penalty.
    while (!done) {
      await (await fetch8("http://svc/", { dispatcher: b })).text();
      if (bad!.hits === before)
        expect(b.snapshot().endpoints.find((e) => e.address === bad!.address)!.state).toBe(
          "ejected",
        );
    }
    expect((await restored).reason).toBe("probe-succeeded");
    expect(bad!.hits).toBe(before + 1);
  });

  it("P2C keeps traffic off a server that fails fast with 503 (failures folded into cost)", async () => {
    const healthy = await Promise.all(
      Array.from({ length: 4 }, () =>
        startServer((_req, res) => {
          setTimeout(() => res.end("ok"), 5);
          return true;
        }),
      ),
    );
    for (const s of healthy) cleanup.push(() => s.close());
    const [bad] = await servers(1);
    bad!.status = 503;
    const b = balancer({
      endpoints: [...healthy.map((s) => s.address), bad!.address],
      accrual: false,
    });
    let sent = 0;
    const worker = async () => {
      while (sent < 400) {
        sent++;
        const r = await request("http://svc/", { dispatcher: b });
        await r.body.text();
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(bad!.hits).toBeLessThan(20); // 5% of 400; a fair share would be 80
  });

  it("ejects an endpoint refusing connections and fails fast with a named error when none is ready", async () => {
    const [s] = await servers(1);
    const address = s!.address;
    await s!.close();
    const failFast: FailFastEvent[] = [];
    const onFailFast = (m: unknown) => failFast.push(m as FailFastEvent);
    subscribe(meshChannels.balancer.failFast, onFailFast);
    cleanup.push(() => unsubscribe(meshChannels.balancer.failFast, onFailFast));
    const b = balancer({
      name: "payments",
      endpoints: [address],
      failFastMs: 100,
      accrual: { consecutiveFailures: 2, minPenaltyMs: 60_000 },
    });
    for (let i = 0; i < 2; i++) {
      await expect(request("http://svc/", { dispatcher: b })).rejects.toMatchObject({
        code: "ECONNREFUSED",
      });
    }
    expect(b.snapshot().endpoints[0]!.state).toBe("ejected");
    const err = await request("http://svc/", { dispatcher: b }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoEndpointsReadyError);
    expect(err).toMatchObject({ code: "MESH_BALANCER_NO_ENDPOINTS_READY", balancer: "payments" });
    expect((err as NoEndpointsReadyError).waitedMs).toBeGreaterThanOrEqual(100);
    await expect(fetch8("http://svc/", { dispatcher: b })).rejects.toMatchObject({
      cause: { code: "MESH_BALANCER_NO_ENDPOINTS_READY" },
    });
    expect(failFast[0]).toMatchObject({ balancer: "payments" });
    expect(failFast[0]!.waitedMs).toBeGreaterThanOrEqual(100);
  });

  it("a request waiting for endpoints is served as soon as one is added", async () => {
    const [s] = await servers(1);
    const b = balancer({ endpoints: [] });
    const pending = request("http://svc/", { dispatcher: b });
    await new Promise((r) => setImmediate(r));
    expect(b.snapshot().waiting).toBe(1);
    b.add(s!.address);
    const r = await pending;
    expect(r.statusCode).toBe(200);
    await r.body.text();
  });

  it("counts gRPC UNAVAILABLE in trailers as a failure", async () => {
    const server = http2.createServer();
    server.on("stream", (stream) => {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () =>
        stream.sendTrailers({ "grpc-status": "14", "grpc-message": "down" }),
      );
      stream.end(Buffer.alloc(5));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanup.push(() => new Promise((r) => server.close(r)));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const b = balancer({
      endpoints: [{ address, protocol: "h2" }],
      accrual: { consecutiveFailures: 3 },
    });
    for (let i = 0; i < 3; i++) {
      const r = await request("http://grpc.svc/pkg.Svc/Call", {
        method: "POST",
        body: Buffer.alloc(5),
        dispatcher: b,
      });
      await r.body.arrayBuffer();
    }
    const snap = b.snapshot().endpoints[0]!;
    expect(snap.failures).toBe(3);
    expect(snap.state).toBe("ejected");
  });
});

describe("bounded endpoint queues", () => {
  it("maxPendingPerEndpoint fails the excess at once with EndpointOverloadedError; pool.connections caps sockets", async () => {
    const held: (() => void)[] = [];
    let sockets = 0;
    const server = await startServer((_req, res) => {
      held.push(() => res.end("late"));
      return true;
    });
    cleanup.push(() => server.close());
    const counting = net.createServer((client) => {
      sockets++;
      const upstream = net.connect(server.port, "127.0.0.1");
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    counting.listen(0, "127.0.0.1");
    await once(counting, "listening");
    cleanup.push(() => new Promise((r) => counting.close(r)));
    const port = (counting.address() as AddressInfo).port;
    const b = balancer({
      endpoints: [`127.0.0.1:${port}`],
      maxPendingPerEndpoint: 6,
      pool: { connections: 2 },
    });
    const inFlight = Array.from({ length: 6 }, () =>
      request(`http://127.0.0.1:${port}/`, { dispatcher: b }).then(async (r) => r.body.text()),
    );
    const started = performance.now();
    const rejected = await request(`http://127.0.0.1:${port}/`, { dispatcher: b }).catch(
      (e: unknown) => e,
    );
    expect(performance.now() - started).toBeLessThan(100);
    expect(rejected).toMatchObject({
      code: "MESH_BALANCER_ENDPOINT_OVERLOADED",
      address: `127.0.0.1:${port}`,
    });
    // Two connections serve the six in turn: the server never sees more than two at once.
    while (held.length < 2) await new Promise((r) => setImmediate(r));
    expect(held.length).toBe(2);
    for (let served = 0; served < 6; ) {
      const next = held.shift();
      if (next === undefined) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      next();
      served++;
    }
    expect(await Promise.all(inFlight)).toEqual(Array(6).fill("late"));
    expect(sockets).toBe(2);
    expect(b.snapshot().endpoints[0]?.pending).toBe(0);
  });
});
