import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launch, type ProxyProcess } from "./helpers.js";

/**
 * HTTP/2 rapid reset (CVE-2023-44487) and bounded upstream connections, against a real
 * proxy process: one h2c client opens thousands of streams and cancels each at once.
 */

const CONNECTIONS_PER_ENDPOINT = 8;
const ATTACK_STREAMS = 5_000;

/** An HTTP/1.1 app that counts requests by path, connections, and the most open at once. */
async function countingApp() {
  const stats = { evil: 0, good: 0, connections: 0, open: 0, maxOpen: 0 };
  const server = http.createServer((req, res) => {
    if (req.url === "/evil") stats.evil++;
    else stats.good++;
    setTimeout(() => res.end("ok"), 5);
  });
  server.on("connection", (socket) => {
    stats.connections++;
    stats.open++;
    stats.maxOpen = Math.max(stats.maxOpen, stats.open);
    socket.on("close", () => stats.open--);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    stats,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** One GET over its own h2c session; resolves with the status and the time it took. */
function timedGet(address: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const session = http2.connect(`http://${address}`);
  return new Promise<{ status: number; ms: number }>((resolve, reject) => {
    const stream = session.request({ ":path": "/good", ":authority": "app" });
    stream.on("response", (h) => {
      stream.resume();
      stream.on("end", () =>
        resolve({ status: Number(h[":status"]), ms: performance.now() - started }),
      );
    });
    stream.on("error", reject);
  }).finally(() => session.close());
}

/**
 * Opens `streams` streams on one session, resetting each (CANCEL) right after its
 * HEADERS, yielding to the event loop every 50; resolves with the GOAWAY code received.
 */
async function rapidReset(address: string, streams: number) {
  const session = http2.connect(`http://${address}`);
  session.on("error", () => undefined);
  const goaway = new Promise<number>((resolve) => {
    session.on("goaway", (code) => resolve(code));
    session.on("close", () => resolve(-1));
  });
  await new Promise((r) => session.once("connect", r));
  let sent = 0;
  for (; sent < streams && !session.closed && !session.destroyed; sent++) {
    try {
      const stream = session.request({ ":path": "/evil", ":authority": "app" });
      stream.on("error", () => undefined);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } catch {
      break; // the session went away under us
    }
    if (sent % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  const code = await goaway;
  session.destroy();
  return { sent, code };
}

/**
 * A busy client that cancels many calls but completes most (deadlines, lost hedges):
 * `total` GETs on one session in batches of 50 (each batch answered before the next, so
 * well under the 1 000 concurrent streams the proxy allows), the first two of every five
 * cancelled right after their HEADERS. Resolves with the GOAWAY code, if any, and the
 * statuses of the calls it did not cancel.
 */
async function busyCanceller(address: string, total: number) {
  const session = http2.connect(`http://${address}`);
  session.on("error", () => undefined);
  let goaway: number | undefined;
  session.on("goaway", (code) => {
    goaway = code;
  });
  await new Promise((r) => session.once("connect", r));
  const statuses: number[] = [];
  for (let i = 0; i < total && goaway === undefined; i += 50) {
    const batch: Promise<number>[] = [];
    for (let j = i; j < i + 50; j++) {
      const stream = session.request(
        { ":path": "/good", ":authority": "app" },
        { endStream: true },
      );
      stream.on("error", () => undefined);
      if (j % 5 < 2) stream.close(http2.constants.NGHTTP2_CANCEL);
      else
        batch.push(
          new Promise((resolve) => {
            stream.on("response", (h) => resolve(Number(h[":status"])));
            stream.on("close", () => resolve(0));
            stream.resume();
          }),
        );
    }
    statuses.push(...(await Promise.all(batch)));
  }
  session.close();
  return { goaway, statuses };
}

describe.each(["outbound", "inbound"] as const)("rapid reset against the %s listener", (side) => {
  let app: Awaited<ReturnType<typeof countingApp>>;
  let proxy: ProxyProcess;
  let address: string;

  beforeAll(async () => {
    app = await countingApp();
    proxy = await launch(
      side === "outbound"
        ? {
            outbound: {
              listen: "127.0.0.1:0",
              connectionsPerEndpoint: CONNECTIONS_PER_ENDPOINT,
              services: [{ name: "app", protocol: "http1", discovery: { static: [app.address] } }],
            },
          }
        : {
            inbound: {
              listen: "127.0.0.1:0",
              app: app.address,
              appProtocol: "http1",
              appConnections: CONNECTIONS_PER_ENDPOINT,
            },
          },
    );
    address = (side === "outbound" ? proxy.addresses.outbound : proxy.addresses.inbound) as string;
  });

  afterAll(async () => {
    await proxy?.stop();
    await app?.close();
  });

  it("closes the abusive connection with ENHANCE_YOUR_CALM; its streams never reach the app; others are served", async () => {
    const pid = proxy.child.pid as number;
    expect((await timedGet(address)).status).toBe(200); // warm: the app pool exists
    const rssBefore = rssMiB(pid);
    const fdsBefore = openFds(pid);

    const attack = rapidReset(address, ATTACK_STREAMS);
    const during = await timedGet(address);
    const { sent, code } = await attack;

    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(sent).toBeLessThan(ATTACK_STREAMS);
    // Without cancel propagation and bounded pools thousands arrived here.
    expect(app.stats.evil).toBeLessThan(50);
    // The pool's cap; a socket the pool destroyed for an aborted request may still be
    // closing at the app when its replacement opens, hence the slack of two.
    expect(app.stats.maxOpen).toBeLessThanOrEqual(CONNECTIONS_PER_ENDPOINT + 2);
    expect(during.status).toBe(200);
    expect(during.ms).toBeLessThan(2_000);

    const after = await timedGet(address);
    expect(after.status).toBe(200);
    expect(openFds(pid) - fdsBefore).toBeLessThan(CONNECTIONS_PER_ENDPOINT + 4);
    expect(rssMiB(pid) - rssBefore).toBeLessThan(40);
    const warned = await proxy.waitForLog((l) => String(l.msg).includes("rapid reset"));
    expect(warned).toMatchObject({ listener: side });
  });

  it("keeps the connection of a busy client that cancels 40 % of its calls", async () => {
    // 1 200 resets in a few seconds: beyond nghttp2's own default reset budget (a burst of
    // 1 000, then 33/s), which would end the session with GOAWAY INTERNAL_ERROR; the proxy
    // judges resets by their share of the streams instead.
    const { goaway, statuses } = await busyCanceller(address, 3_000);
    expect(goaway).toBeUndefined();
    expect(statuses).toHaveLength(1_800);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1_800);
  });
});

describe("bounded endpoint queue", () => {
  it("requests beyond maxPendingPerEndpoint fail at once with 503 endpoint overloaded", async () => {
    const held: http.ServerResponse[] = [];
    const server = http.createServer((_req, res) => held.push(res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const appAddress = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const proxy = await launch({
      outbound: {
        listen: "127.0.0.1:0",
        connectionsPerEndpoint: 2,
        maxPendingPerEndpoint: 3,
        services: [{ name: "slow", retry: { on: [] }, discovery: { static: [appAddress] } }],
      },
    });
    const [host, port] = (proxy.addresses.outbound as string).split(":");
    const get = () =>
      new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
        const req = http.get({ host, port, path: "/", headers: { host: "slow" }, agent: false });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              error: res.headers["mesh-proxy-error"] as string | undefined,
            }),
          );
        });
        req.on("error", reject);
      });
    try {
      const first = [get(), get(), get()];
      while (held.length < 2) await new Promise((r) => setTimeout(r, 5));
      const started = performance.now();
      const rejected = await get();
      expect(performance.now() - started).toBeLessThan(500);
      expect(rejected).toEqual({
        status: 503,
        error: "endpoint overloaded: too many requests pending",
      });
      expect(held.length).toBe(2); // two connections: the third request waits in the queue
      for (let served = 0; served < 3; served++) {
        while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
        held.shift()?.end("ok");
      }
      expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200, 200]);
    } finally {
      await proxy.stop();
      server.closeAllConnections();
      server.close();
    }
  });
});
