import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, test } from "vitest";
import { topology } from "../../src/dashboard/topology.js";
import type { ProxyStat } from "../../src/stat/compute.js";
import { CLI, eventually, h1App, launch, type ProxyProcess, runCli, tempDir } from "../helpers.js";

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

interface Snapshot {
  proxies: {
    name: string;
    up: boolean;
    traffic: { direction: string; authority: string; total: { requests: number } }[];
    routes: { route?: string }[];
  }[];
  nodes: { id: string; kind: string; up: boolean }[];
  edges: {
    from: string;
    to: string;
    rps: number | null;
    mtls: boolean;
    history: { rps: unknown[] };
  }[];
}

/** `mesh-proxy dashboard` as a process; resolves once it printed its URL. */
async function dashboard(args: string[]): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, "dashboard", "--listen", "127.0.0.1:0", "--interval", "200ms", ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  closers.push(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  });
  let out = "";
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /mesh-proxy dashboard: (http:\/\/\S+)/.exec(out);
      if (m !== null) resolve(m[1] as string);
    });
    child.once("exit", (code) => reject(new Error(`dashboard exited ${code}`)));
  });
}

async function snapshot(url: string): Promise<Snapshot> {
  const s = (await (await request(`${url}snapshot.json`)).body.json()) as Snapshot | null;
  // The dashboard has a snapshot from its first scrape on, before it prints its URL.
  expect(s).not.toBeNull();
  return s as Snapshot;
}

/** A server-sent event stream; `next(event)` resolves with the next event of that name. */
function sse(url: string) {
  const events: { event: string; data: string }[] = [];
  const waiters: { event: string; resolve: (d: string) => void }[] = [];
  const req = http.get(url, (res) => {
    let buf = "";
    res.setEncoding("utf8");
    res.on("error", () => {});
    res.on("data", (d: string) => {
      buf += d;
      let at = buf.indexOf("\n\n");
      while (at >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) {
          const w = waiters.findIndex((x) => x.event === event);
          if (w >= 0) waiters.splice(w, 1)[0]?.resolve(data);
          else events.push({ event, data });
        }
        at = buf.indexOf("\n\n");
      }
    });
  });
  req.on("error", () => {});
  closers.push(async () => req.destroy());
  return {
    next: (event: string) =>
      new Promise<string>((resolve) => {
        const i = events.findIndex((e) => e.event === event);
        if (i >= 0) resolve(events.splice(i, 1)[0]?.data as string);
        else waiters.push({ event, resolve });
      }),
  };
}

async function mesh(): Promise<{ web: ProxyProcess; books: ProxyProcess }> {
  const app = await h1App((req, res) => {
    req.resume();
    res.end("ok");
  });
  closers.push(() => app.close());
  const books = await launch({ inbound: { listen: "127.0.0.1:0", app: app.address } });
  closers.push(() => books.stop());
  const web = await launch({
    outbound: {
      listen: "127.0.0.1:0",
      services: [{ name: "books", discovery: { static: [books.addresses.inbound] } }],
    },
  });
  closers.push(() => web.stop());
  return { web, books };
}

async function send(web: ProxyProcess, path: string) {
  const res = await request(`http://${web.addresses.outbound}${path}`, {
    headers: { host: "books" },
  });
  await res.body.dump();
  return res.statusCode;
}

describe("mesh-proxy dashboard (real proxies)", () => {
  test("serves the page, aggregates the admins, pushes snapshots and marks a stopped proxy down", async () => {
    const { web, books } = await mesh();
    const dir = tempDir();
    const file = join(dir, "admins.txt");
    writeFileSync(file, `# the books replica\nbooks-proxy=${books.addresses.admin}\n`);
    const url = await dashboard([
      "--admin",
      `web-proxy=${web.addresses.admin}`,
      "--admins-file",
      file,
    ]);
    const page = await request(url);
    expect(page.headers["content-type"]).toMatch(/text\/html/);
    expect(await page.body.text()).toContain('<script type="module" src="app.js">');
    const js = await request(`${url}app.js`);
    expect(js.headers["content-type"]).toMatch(/javascript/);
    await js.body.dump();

    for (let i = 0; i < 5; i++) expect(await send(web, "/b")).toBe(200);
    await eventually(async () => {
      const s = await snapshot(url);
      const row = s.proxies
        .find((p) => p.name === "web-proxy")
        ?.traffic.find((t) => t.direction === "outbound");
      return row?.total.requests === 5;
    });
    const s = await snapshot(url);
    expect(s.proxies.map((p) => [p.name, p.up])).toEqual([
      ["web-proxy", true],
      ["books-proxy", true],
    ]);
    expect(s.proxies[0]?.routes).toEqual([expect.objectContaining({ route: "default" })]);
    // Plaintext endpoints name no identity: the edge goes to the service, marked not mTLS.
    const edge = s.edges.find((e) => e.from === "web-proxy");
    expect(edge).toMatchObject({ to: "books", mtls: false });
    expect(edge?.history.rps.length).toBeGreaterThan(0);

    const events = sse(`${url}events`);
    expect(JSON.parse(await events.next("snapshot"))).toHaveProperty("proxies");

    await books.stop();
    await eventually(async () => {
      const after = await snapshot(url);
      return after.proxies.find((p) => p.name === "books-proxy")?.up === false;
    });
    // Pushed snapshots show it down too (older ones may still be queued), with web still up.
    let next: Snapshot;
    do next = JSON.parse(await events.next("snapshot")) as Snapshot;
    while (next.proxies.find((p) => p.name === "books-proxy")?.up !== false);
    expect(next.proxies.find((p) => p.name === "web-proxy")?.up).toBe(true);
    expect(next.nodes.find((n) => n.id === "books-proxy")).toMatchObject({ up: false });
  });

  test("relays a filtered live tap from the admins", async () => {
    const { web, books } = await mesh();
    const url = await dashboard([
      "--admin",
      `web=${web.addresses.admin},books=${books.addresses.admin}`,
    ]);
    const tap = sse(`${url}tap?admin=web&path=/tapped`);
    expect(JSON.parse(await tap.next("tap"))).toMatchObject({ proxy: "web", type: "tap" });
    expect(await send(web, "/other")).toBe(200);
    expect(await send(web, "/tapped/1")).toBe(200);
    expect(JSON.parse(await tap.next("tap"))).toMatchObject({
      proxy: "web",
      type: "request",
      path: "/tapped/1",
      status: 200,
      route: "default",
    });
    const bad = await request(`${url}tap?status=9xx`);
    expect(bad.statusCode).toBe(400);
    expect(await bad.body.text()).toMatch(/status: expected/);
  });

  test("bad flags are usage errors naming them", async () => {
    const none = await runCli(["dashboard"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--admin: expected at least one/);
    const dup = await runCli(["dashboard", "--admin", "a=127.0.0.1:1,a=127.0.0.1:2"]);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/--admin: expected distinct names, got "a" twice/);
    const file = await runCli(["dashboard", "--admins-file", "/nonexistent/admins"]);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/--admins-file: cannot read \/nonexistent\/admins/);
  });
});

describe("the dashboard's topology", () => {
  const stat = (proxy: string, over: Partial<ProxyStat>): ProxyStat => ({
    proxy,
    admin: "127.0.0.1:1",
    windowSeconds: 1,
    error: null,
    traffic: [],
    routes: [],
    endpoints: [],
    endpointsError: null,
    ...over,
  });
  const endpoint = (address: string, identity: string | null, rps: number, successRate: number) =>
    ({
      service: "books",
      backend: "books",
      address,
      identity,
      state: "ready",
      share: null,
      rps,
      successRate,
      pending: 0,
      cost: 0,
      rttMs: 1,
      failureRate: 0,
      total: { requests: 0, failures: 0 },
    }) as const;

  test("an endpoint goes to the proxy holding its identity, else its fixed inbound port, else its service", () => {
    const info = new Map([
      ["fast", { identity: "spiffe://d/sa/fast", inbound: null }],
      ["plain", { identity: null, inbound: "0.0.0.0:7001" }],
    ]);
    const { nodes, edges } = topology(
      [
        stat("web", {
          endpoints: [
            endpoint("127.0.0.1:40000", "spiffe://d/sa/fast", 9, 1),
            endpoint("127.0.0.1:7001", null, 2, 0.5),
            endpoint("127.0.0.1:9999", null, 1, 1),
          ],
          traffic: [
            {
              direction: "inbound",
              authority: "web",
              successRate: 1,
              rps: 12,
              p50: 1,
              p95: 1,
              p99: 1,
              mtls: "no",
              tlsShare: 0,
              clientIds: [],
              serverIds: [],
              window: { requests: 12, responses: 12 },
              total: { requests: 12, successes: 12, failures: 0 },
            },
          ],
        }),
        stat("fast", {}),
        stat("plain", { error: { code: "X", message: "down" } }),
      ],
      info,
    );
    expect(edges).toEqual([
      {
        from: "web",
        to: "fast",
        service: "books",
        rps: 9,
        successRate: 1,
        mtls: true,
        identity: "spiffe://d/sa/fast",
      },
      {
        from: "web",
        to: "plain",
        service: "books",
        rps: 2,
        successRate: 0.5,
        mtls: false,
        identity: null,
      },
      {
        from: "web",
        to: "books",
        service: "books",
        rps: 1,
        successRate: 1,
        mtls: false,
        identity: null,
      },
      {
        from: "clients",
        to: "web",
        service: "web",
        rps: 12,
        successRate: 1,
        mtls: false,
        identity: null,
      },
    ]);
    expect(nodes.find((n) => n.id === "plain")).toEqual({ id: "plain", kind: "proxy", up: false });
    expect(nodes.find((n) => n.id === "books")).toEqual({ id: "books", kind: "service", up: true });
  });
});
