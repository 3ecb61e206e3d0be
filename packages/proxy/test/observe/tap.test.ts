import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { networkInterfaces } from "node:os";
import { createInterface } from "node:readline";
import { Agent, request } from "undici";
import { afterEach, describe, expect, test, vi } from "vitest";
import { createLogger, MeshProxy, validateConfig } from "../../src/index.js";
import { parsePrometheusText } from "../../src/stat/prometheus.js";
import { requestChannel, type TapEvent } from "../../src/tap/event.js";
import { parseTapFilter, tapMatches } from "../../src/tap/filter.js";
import { CLI, eventually, h1App, launch, type ProxyProcess, runCli } from "../helpers.js";

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function app() {
  const a = await h1App((req, res) => {
    req.resume();
    res.writeHead(req.url?.startsWith("/fail") ? 503 : 200, { "content-type": "text/plain" });
    res.end("hello");
  });
  closers.push(() => a.close());
  return a;
}

function outboundConfig(appAddress: string, admin: Record<string, unknown> = {}) {
  return {
    admin: { listen: "127.0.0.1:0", ...admin },
    outbound: {
      listen: "127.0.0.1:0",
      services: [
        {
          name: "books",
          discovery: { static: [appAddress] },
          retry: { on: [] },
          routes: [{ name: "list-books", match: { pathPrefix: "/books" } }],
        },
      ],
    },
  };
}

async function proxyFor(admin: Record<string, unknown> = {}): Promise<ProxyProcess> {
  const a = await app();
  const proxy = await launch(outboundConfig(a.address, admin));
  closers.push(() => proxy.stop());
  return proxy;
}

async function send(proxy: ProxyProcess, path: string, headers: Record<string, string> = {}) {
  const res = await request(`http://${proxy.addresses.outbound}${path}`, {
    headers: { host: "books", ...headers },
  });
  await res.body.dump();
  return res.statusCode;
}

/** A tap stream read line by line; `next()` resolves with the next parsed line. */
function openTap(admin: string, query = "", headers: Record<string, string> = {}) {
  const lines: Record<string, unknown>[] = [];
  const waiters: ((l: Record<string, unknown>) => void)[] = [];
  let status = 0;
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(`http://${admin}/tap${query}`, { headers }, (res) => {
      status = res.statusCode ?? 0;
      // The proxy stops at the end of each test, which aborts the stream: expected.
      res.on("error", () => {});
      resolve(res);
      const rl = createInterface({ input: res });
      rl.on("error", () => {}); // readline re-emits the abort at the end of each test
      rl.on("line", (line) => {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        const w = waiters.shift();
        if (w !== undefined) w(parsed);
        else lines.push(parsed);
      });
    });
    req.on("error", reject);
    closers.push(async () => req.destroy());
  });
  return {
    response,
    status: () => status,
    next: () =>
      new Promise<Record<string, unknown>>((resolve) => {
        const l = lines.shift();
        if (l !== undefined) resolve(l);
        else waiters.push(resolve);
      }),
  };
}

async function metric(admin: string, name: string, labels: Record<string, string> = {}) {
  const agent = new Agent();
  const res = await request(`http://${admin}/metrics`, { dispatcher: agent });
  const text = await res.body.text();
  await agent.close();
  return parsePrometheusText(text)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

describe("GET /tap (real proxy process)", () => {
  test("streams the requests matching its filters, with route, status, latency and no header values", async () => {
    const proxy = await proxyFor();
    const tap = openTap(proxy.addresses.admin, "?authority=books&path=/books&method=get");
    expect((await tap.response).headers["content-type"]).toBe("application/x-ndjson");
    expect(await tap.next()).toMatchObject({ type: "tap", filter: { authority: "books" } });
    expect(await send(proxy, "/other")).toBe(200); // filtered out: path
    expect(await send(proxy, "/books/1?x=1", { "user-agent": "secret-agent" })).toBe(200);
    const e = await tap.next();
    expect(e).toMatchObject({
      type: "request",
      direction: "outbound",
      method: "GET",
      authority: "books",
      path: "/books/1?x=1",
      route: "list-books",
      backend: "books",
      status: 200,
      bytes: 5,
    });
    expect(e.latencyMs).toBeGreaterThan(0);
    expect(e.durationMs).toBeGreaterThanOrEqual(e.latencyMs as number);
    expect(JSON.stringify(e)).not.toContain("secret-agent");
  });

  test("inbound events name the app the request went to", async () => {
    const a = await app();
    const proxy = await launch({ inbound: { listen: "127.0.0.1:0", app: a.address } });
    closers.push(() => proxy.stop());
    const tap = openTap(proxy.addresses.admin, "?direction=inbound");
    await tap.next();
    const res = await request(`http://${proxy.addresses.inbound}/in`, { headers: { host: "me" } });
    await res.body.dump();
    expect(await tap.next()).toMatchObject({
      direction: "inbound",
      path: "/in",
      status: 200,
      endpoint: a.address,
      tls: false,
    });
  });

  test("status=5xx shows failures only; headers allowed by admin.tap.headers are shown", async () => {
    const proxy = await proxyFor({ tap: { headers: ["User-Agent"] } });
    const tap = openTap(proxy.addresses.admin, "?status=5xx");
    await tap.next();
    expect(await send(proxy, "/books/ok")).toBe(200);
    expect(await send(proxy, "/fail", { "user-agent": "ua-1", authorization: "x" })).toBe(503);
    const e = await tap.next();
    expect(e).toMatchObject({ path: "/fail", status: 503, route: "default" });
    expect(e.headers).toEqual({ "user-agent": "ua-1" });
  });

  test("a bad filter is refused with 400 naming the parameter", async () => {
    const proxy = await proxyFor();
    for (const [q, msg] of [
      ["?status=9xx", /status: expected 1xx\.\.5xx/],
      ["?sample=2", /sample: expected a number in \(0, 1\], got "2"/],
      ["?colour=red", /colour: expected one of direction, authority/],
    ] as const) {
      const res = await request(`http://${proxy.addresses.admin}/tap${q}`);
      expect(res.statusCode).toBe(400);
      expect(await res.body.text()).toMatch(msg);
    }
  });

  test("with admin.tap.token a bearer token is required, even on loopback", async () => {
    const token = "0123456789abcdef-tap";
    const proxy = await proxyFor({ tap: { token } });
    const none = await request(`http://${proxy.addresses.admin}/tap`);
    expect(none.statusCode).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer/);
    await none.body.dump();
    const wrong = await request(`http://${proxy.addresses.admin}/tap`, {
      headers: { authorization: `Bearer ${token}x` },
    });
    expect(wrong.statusCode).toBe(401);
    await wrong.body.dump();
    const tap = openTap(proxy.addresses.admin, "", { authorization: `Bearer ${token}` });
    expect(await tap.next()).toMatchObject({ type: "tap" });
    expect(await send(proxy, "/books/2")).toBe(200);
    expect(await tap.next()).toMatchObject({ path: "/books/2" });
    // The token is a secret: /config redacts it.
    const config = await (await request(`http://${proxy.addresses.admin}/config`)).body.json();
    expect(JSON.stringify(config)).not.toContain(token);
  });

  test("without a token, clients on other addresses are refused (403)", async ({ skip }) => {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === "IPv4" && !i.internal)?.address;
    skip(external === undefined, "this host has no non-loopback IPv4 address to connect from");
    const proxy = await proxyFor({ listen: "0.0.0.0:0" });
    const port = proxy.addresses.admin.split(":").pop();
    const res = await request(`http://${external}:${port}/tap`);
    expect(res.statusCode).toBe(403);
    expect(await res.body.text()).toMatch(/loopback only; set admin\.tap\.token/);
    const metrics = await request(`http://${external}:${port}/metrics`);
    expect(metrics.statusCode).toBe(200); // the rest of admin stays reachable
    await metrics.body.dump();
  });

  test("a reader that stops reading gets events dropped and counted, the queue stays bounded", async () => {
    const maxQueue = 8;
    const proxy = await proxyFor({ tap: { maxQueue } });
    const [host, port] = proxy.addresses.admin.split(":") as [string, string];
    const socket = net.connect(Number(port), host);
    closers.push(async () => socket.destroy());
    socket.write(`GET /tap HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
    let received = "";
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        received += d.toString();
        if (received.includes('"type":"tap"')) {
          socket.off("data", onData);
          resolve();
        }
      };
      socket.on("data", onData);
    });
    socket.pause(); // the reader stops reading; the stream is live
    // Big events fill the socket buffers quickly; traffic until the proxy reports drops.
    const long = `/books/${"x".repeat(8_000)}`;
    const agent = new Agent({ connections: 16 });
    let sent = 0;
    await eventually(async () => {
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          const res = await request(`http://${proxy.addresses.outbound}${long}`, {
            headers: { host: "books" },
            dispatcher: agent,
          });
          await res.body.dump();
          sent++;
        }),
      );
      return (await metric(proxy.addresses.admin, "tap_events_total", { result: "dropped" })) > 0;
    }, 60_000);
    await agent.close();
    const queued = await metric(proxy.addresses.admin, "tap_queued_events");
    expect(queued).toBeLessThanOrEqual(maxQueue);
    const dropped = await metric(proxy.addresses.admin, "tap_events_total", { result: "dropped" });
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBeLessThan(sent);
    // Reading again: the queued events arrive, and `dropped` lines account for every loss.
    const reported = () =>
      [...received.matchAll(/"type":"dropped","count":(\d+)/g)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    await new Promise<void>((resolve) => {
      socket.on("data", (d: Buffer) => {
        received += d.toString();
        if (reported() === dropped) resolve();
      });
      socket.resume();
    });
    expect(reported()).toBe(dropped);
  }, 90_000);
});

describe("tap costs nothing when nobody taps (in-process proxy)", () => {
  test("no event is published without a tap stream, one per request with one, none after it closes", async () => {
    const a = await app();
    const r = validateConfig(outboundConfig(a.address));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const proxy = await MeshProxy.start({ config: r.config, logger: createLogger("silent") });
    closers.push(() => proxy.shutdown(1_000));
    // Counts publishes; the real publish is looked up on the prototype at call time because
    // node:diagnostics_channel swaps a channel's prototype when it gains subscribers.
    const publish = vi.spyOn(requestChannel, "publish").mockImplementation((message) => {
      Object.getPrototypeOf(requestChannel).publish.call(requestChannel, message);
    });
    closers.push(async () => publish.mockRestore());
    const get = async (path: string) => {
      const res = await request(`http://${proxy.addresses.outbound}${path}`, {
        headers: { host: "books" },
      });
      await res.body.dump();
    };
    for (let i = 0; i < 20; i++) await get("/books/1");
    expect(requestChannel.hasSubscribers).toBe(false);
    expect(publish).not.toHaveBeenCalled();

    const controller = new AbortController();
    const res = await request(`http://${proxy.addresses.admin}/tap`, { signal: controller.signal });
    const lines = createInterface({ input: res.body });
    const it = lines[Symbol.asyncIterator]();
    expect(JSON.parse((await it.next()).value as string)).toMatchObject({ type: "tap" });
    expect(requestChannel.hasSubscribers).toBe(true);
    for (let i = 0; i < 5; i++) await get("/books/2");
    for (let i = 0; i < 5; i++)
      expect(JSON.parse((await it.next()).value as string)).toMatchObject({ path: "/books/2" });
    expect(publish).toHaveBeenCalledTimes(5);

    controller.abort();
    await eventually(() => !requestChannel.hasSubscribers);
    for (let i = 0; i < 20; i++) await get("/books/3");
    expect(publish).toHaveBeenCalledTimes(5);
  });
});

describe("mesh-proxy tap", () => {
  test("prints requests like linkerd viz tap and exits after --count", async () => {
    const proxy = await proxyFor();
    const child = spawn(
      process.execPath,
      [CLI, "tap", "--admin", proxy.addresses.admin, "--authority", "books", "--count", "1"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    closers.push(async () => child.kill());
    // The CLI's stream is open once the proxy counts it.
    await eventually(async () => (await metric(proxy.addresses.admin, "tap_streams")) === 1);
    expect(await send(proxy, "/books/7")).toBe(200);
    expect(await exited).toBe(0);
    expect(stdout).toMatch(
      /^end proxy=out :method=GET :authority=books :path=\/books\/7 route=list-books backend=books :status=200 latency=[\d.]+ms duration=[\d.]+ms response-length=5B\n$/,
    );
  });

  test("a bad flag is a usage error naming it", async () => {
    const r = await runCli(["tap", "--admin", "127.0.0.1:1", "--status", "9xx"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--status: expected 1xx\.\.5xx/);
    const bad = await runCli(["tap", "--admin", "127.0.0.1:1", "--count", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--count: expected an integer >= 1, got "0"/);
  });

  test("a refused stream exits 1 with the proxy's reason", async () => {
    const proxy = await proxyFor({ tap: { token: "0123456789abcdef-tap" } });
    const r = await runCli(["tap", "--admin", proxy.addresses.admin]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/HTTP 401: tap needs Authorization: Bearer/);
  });
});

describe("tap filters", () => {
  const event = (over: Partial<TapEvent>): TapEvent => ({
    ts: 0,
    direction: "inbound",
    method: "GET",
    authority: "books:8080",
    path: "/api/books?x=1",
    route: undefined,
    backend: undefined,
    status: 200,
    grpcStatus: undefined,
    latencyMs: 1,
    durationMs: 1,
    bytes: 0,
    tls: true,
    clientId: "spiffe://demo.mesh/ns/demo/sa/web",
    serverId: undefined,
    endpoint: undefined,
    error: undefined,
    headers: {},
    ...over,
  });
  const matches = (query: string, over: Partial<TapEvent> = {}) =>
    tapMatches(parseTapFilter(new URLSearchParams(query)), event(over));

  test("every given filter must match; authority without a port matches any port", () => {
    expect(matches("authority=BOOKS&path=/api&method=get&direction=inbound")).toBe(true);
    expect(matches("authority=book")).toBe(false);
    expect(matches("path=/ap")).toBe(true); // a prefix of the path, as given
    expect(matches("direction=outbound")).toBe(false);
    expect(matches("identity=spiffe://demo.mesh/ns/demo/sa/web")).toBe(true);
    expect(matches("identity=spiffe://demo.mesh/ns/demo/sa/books")).toBe(false);
    expect(matches("identity=spiffe://x/sa/books", { serverId: "spiffe://x/sa/books" })).toBe(true);
  });

  test("status takes a class, an exact code, or error (failed or reset by the proxy)", () => {
    expect(matches("status=2xx")).toBe(true);
    expect(matches("status=5xx", { status: 503 })).toBe(true);
    expect(matches("status=503", { status: 503 })).toBe(true);
    expect(matches("status=502", { status: 503 })).toBe(false);
    expect(matches("status=error", { status: 0 })).toBe(true);
    expect(matches("status=error", { status: 504, error: "request timeout" })).toBe(true);
    expect(matches("status=error", { status: 500 })).toBe(false);
  });
});
