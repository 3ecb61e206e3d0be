import { writeFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { Agent, request } from "undici";
import { afterEach, describe, expect, test } from "vitest";
import { stringify } from "yaml";
import {
  eventually,
  h1App,
  h2App,
  launch,
  type ProxyProcess,
  startProxy,
  tempDir,
  writeConfig,
} from "./helpers.js";

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function app(name: string, delayMs = 0) {
  let received = 0;
  const a = await h1App((req, res) => {
    received++;
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { "x-from": name });
      res.end(name);
    }, delayMs);
  });
  closers.push(() => a.close());
  return { ...a, received: () => received };
}

function track(p: ProxyProcess): ProxyProcess {
  closers.push(() => p.stop());
  return p;
}

describe("proxy process lifecycle", () => {
  test("SIGTERM during a stream of requests: every request in flight completes, exit 0", async () => {
    const backend = await app("slow", 300);
    const proxy = track(
      await launch({
        shutdown: { gracePeriod: "10s" },
        outbound: {
          listen: "127.0.0.1:0",
          services: [{ name: "api", discovery: { static: [backend.address] } }],
        },
      }),
    );
    const agent = new Agent({ connections: 20 });
    const inflight = Array.from({ length: 20 }, () =>
      request(`http://${proxy.addresses.outbound}/`, {
        headers: { host: "api" },
        dispatcher: agent,
      }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() })),
    );
    await eventually(() => backend.received() === 20);
    proxy.child.kill("SIGTERM");
    const results = await Promise.all(inflight);
    expect(results.every((r) => r.status === 200 && r.body === "slow")).toBe(true);
    expect(await proxy.exited).toBe(0);
    expect(proxy.logs.some((l) => l.msg === "shutdown complete")).toBe(true);
    await agent.close();
  });

  test.each(["outbound", "inbound"] as const)(
    "SIGTERM sends GOAWAY to HTTP/2 clients of the %s listener; their streams in flight complete",
    async (side) => {
      // An h2c app: with `protocol: auto` the proxy speaks the client's protocol upstream.
      // The app answers only once the client has seen GOAWAY: the streams are in flight
      // when it arrives, whatever the machine's speed.
      let received = 0;
      let sawGoaway!: () => void;
      const goawaySeen = new Promise<void>((r) => (sawGoaway = r));
      const backend = await h2App((req, res) => {
        received++;
        req.resume();
        void goawaySeen.then(() => res.end("slow"));
      });
      closers.push(() => backend.close());
      const proxy = track(
        await launch({
          shutdown: { gracePeriod: "10s" },
          ...(side === "outbound"
            ? {
                outbound: {
                  listen: "127.0.0.1:0",
                  services: [{ name: "api", discovery: { static: [backend.address] } }],
                },
              }
            : { inbound: { listen: "127.0.0.1:0", app: backend.address } }),
        }),
      );
      const session = http2.connect(`http://${proxy.addresses[side]}`);
      session.on("error", () => undefined);
      const goaway = new Promise<{ code: number; lastStreamId: number }>((resolve) =>
        session.once("goaway", (code, lastStreamId) => {
          sawGoaway();
          resolve({ code, lastStreamId });
        }),
      );
      const exchange = (path: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const stream = session.request({ ":path": path, ":authority": "api" });
          let status = 0;
          let body = "";
          stream.on("response", (h) => (status = Number(h[":status"])));
          stream.setEncoding("utf8");
          stream.on("data", (c: string) => (body += c));
          stream.on("end", () => resolve({ status, body }));
          stream.on("error", reject);
          stream.end();
        });
      const inflight = [exchange("/a"), exchange("/b"), exchange("/c")];
      await eventually(() => received === 3);
      proxy.child.kill("SIGTERM");
      // GOAWAY (NO_ERROR) arrives while the three streams wait for the app...
      const frame = await goaway;
      expect(frame.code).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(frame.lastStreamId).toBeGreaterThanOrEqual(5); // client streams 1, 3, 5
      // ...and they still complete in full.
      expect(await Promise.all(inflight)).toEqual([
        { status: 200, body: "slow" },
        { status: 200, body: "slow" },
        { status: 200, body: "slow" },
      ]);
      expect(await proxy.exited).toBe(0);
      session.destroy();
    },
  );

  test("config reload under load: zero failed requests; a bad config is rejected and the old one keeps serving", async () => {
    const a = await app("a");
    const b = await app("b");
    const dir = tempDir();
    const config = (target: string) => ({
      admin: { listen: "127.0.0.1:0" },
      outbound: {
        listen: "127.0.0.1:0",
        services: [{ name: "api", discovery: { static: [target] } }],
      },
    });
    const file = writeConfig(dir, config(a.address));
    const proxy = track(await startProxy(file));
    const agent = new Agent({ connections: 4 });
    let stop = false;
    const failures: string[] = [];
    const seen = new Set<string>();
    const loop = async () => {
      while (!stop) {
        try {
          const r = await request(`http://${proxy.addresses.outbound}/`, {
            headers: { host: "api" },
            dispatcher: agent,
          });
          const body = await r.body.text();
          if (r.statusCode !== 200) failures.push(`${r.statusCode} ${body}`);
          else seen.add(body);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    try {
      await eventually(() => a.received() > 20);
      // Ports in config are fixed after the first start: keep them so the reload needs no restart.
      const pinned = (target: string) => ({
        ...config(target),
        admin: { listen: proxy.addresses.admin },
        outbound: { ...config(target).outbound, listen: proxy.addresses.outbound },
      });
      writeFileSync(file, stringify(pinned(b.address)));
      await proxy.waitForLog((l) => l.msg === "config reloaded");
      const bAtReload = b.received();
      await eventually(() => b.received() > bAtReload + 20);
      writeFileSync(file, "outbound:\n  services:\n    - name: api\n      retry: { limit: x }\n");
      const rejected = await proxy.waitForLog(
        (l) => l.msg === "config reload rejected; keeping the running config",
      );
      expect(rejected.problems).toEqual(
        expect.arrayContaining([
          'outbound.services[0].retry.limit: expected integer >= 0, got "x"',
        ]),
      );
      const bAfterBad = b.received();
      await eventually(() => b.received() > bAfterBad + 20);
    } finally {
      // Also on a failed step: the loops must not outlive the test.
      stop = true;
      await Promise.all(loops);
    }
    await agent.close();
    expect(failures).toEqual([]);
    expect(seen).toEqual(new Set(["a", "b"]));
    // SIGHUP also reloads (nothing changed: still b).
    proxy.child.kill("SIGHUP");
    await proxy.waitForLog((l) => l.msg === "SIGHUP: reloading config");
  });

  test("slowloris and oversized headers are rejected while other clients are served", async () => {
    const backend = await app("ok");
    const proxy = track(
      await launch({
        inbound: {
          listen: "127.0.0.1:0",
          app: backend.address,
          limits: { headersTimeout: "500ms", maxHeaderBytes: 8192, maxHeaderCount: 20 },
        },
      }),
    );
    const [host, port] = (proxy.addresses.inbound as string).split(":") as [string, string];
    // Slowloris: a request head that never finishes.
    const slow = net.connect(Number(port), host);
    await new Promise((r) => slow.once("connect", r));
    slow.write("GET / HTTP/1.1\r\nHost: x\r\n");
    const drip = setInterval(() => slow.write("x-drip: 1\r\n"), 100);
    let slowReply = "";
    slow.on("data", (d: Buffer) => (slowReply += d.toString()));
    const slowClosed = new Promise((r) => slow.once("close", r));
    slow.on("error", () => undefined);
    // Others are served meanwhile.
    for (let i = 0; i < 5; i++) {
      const r = await request(`http://${proxy.addresses.inbound}/`);
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    await slowClosed;
    clearInterval(drip);
    expect(slowReply).toMatch(/^HTTP\/1\.1 408/);
    // Oversized header block.
    const big = await request(`http://${proxy.addresses.inbound}/`, {
      headers: { "x-big": "a".repeat(10_000) },
    }).catch((e: unknown) => e);
    expect((big as { statusCode?: number }).statusCode).toBe(431);
    // Too many headers.
    const many: Record<string, string> = {};
    for (let i = 0; i < 30; i++) many[`x-h${i}`] = "1";
    const tooMany = await request(`http://${proxy.addresses.inbound}/`, { headers: many });
    expect(tooMany.statusCode).toBe(431);
    await tooMany.body.dump();
    const after = await request(`http://${proxy.addresses.inbound}/`);
    expect(after.statusCode).toBe(200);
    await after.body.dump();
  });

  test("admin: /live, /ready, /config redacted, POST /shutdown from loopback exits 0", async () => {
    const backend = await app("ok");
    const proxy = track(
      await launch({
        inbound: { listen: "127.0.0.1:0", app: backend.address },
      }),
    );
    const admin = `http://${proxy.addresses.admin}`;
    expect((await request(`${admin}/live`)).statusCode).toBe(200);
    expect((await request(`${admin}/ready`)).statusCode).toBe(200);
    const cfg = (await (await request(`${admin}/config`)).body.json()) as {
      inbound: { app: string; limits: { headersTimeout: number } };
    };
    expect(cfg.inbound.app).toBe(backend.address);
    expect(cfg.inbound.limits.headersTimeout).toBe(10_000);
    expect((await request(`${admin}/shutdown`)).statusCode).toBe(405);
    const r = await request(`${admin}/shutdown`, { method: "POST" });
    expect(r.statusCode).toBe(202);
    expect(await proxy.exited).toBe(0);
  });
});
