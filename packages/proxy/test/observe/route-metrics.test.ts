import { Agent, request } from "undici";
import { afterEach, describe, expect, test } from "vitest";
import { routeMatchName } from "../../src/http/route-match.js";
import { routeNames } from "../../src/outbound/route-name.js";
import { parsePrometheusText } from "../../src/stat/prometheus.js";
import { h1App, launch, type ProxyProcess, runCli, tempDir, writeConfig } from "../helpers.js";

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function get(proxy: ProxyProcess, host: string, path: string, method = "GET") {
  const res = await request(`http://${proxy.addresses.outbound}${path}`, {
    method: method as "GET",
    headers: { host },
  });
  await res.body.dump();
  return res.statusCode;
}

describe("per-route metrics", () => {
  test("the matched route's name labels request_total, response_total and latency on /metrics", async () => {
    const app = await h1App((req, res) => {
      req.resume();
      res.writeHead(req.url?.startsWith("/fail") ? 500 : 200);
      res.end("ok");
    });
    closers.push(() => app.close());
    const proxy = await launch({
      outbound: {
        listen: "127.0.0.1:0",
        services: [
          {
            name: "books",
            discovery: { static: [app.address] },
            retry: { on: [] },
            routes: [
              { name: "list-books", match: { pathPrefix: "/books", methods: ["GET"] } },
              { match: { pathPrefix: "/fail" } },
            ],
          },
        ],
      },
    });
    closers.push(() => proxy.stop());
    for (let i = 0; i < 3; i++) expect(await get(proxy, "books", "/books/1")).toBe(200);
    expect(await get(proxy, "books", "/books/1", "DELETE")).toBe(200);
    for (let i = 0; i < 2; i++) expect(await get(proxy, "books", "/fail/x")).toBe(500);

    const agent = new Agent();
    const text = await (
      await request(`http://${proxy.addresses.admin}/metrics`, { dispatcher: agent })
    ).body.text();
    await agent.close();
    const samples = parsePrometheusText(text);
    const value = (name: string, labels: Record<string, string>) =>
      samples
        .filter(
          (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
        )
        .reduce((sum, s) => sum + s.value, 0);
    const out = { direction: "outbound", authority: "books" };
    expect(value("request_total", { ...out, route: "list-books" })).toBe(3);
    // DELETE is not a GET: it falls through to the service's default route.
    expect(value("request_total", { ...out, route: "default" })).toBe(1);
    // An unnamed route is labelled by what it matches, not by its position.
    expect(value("request_total", { ...out, route: "prefix:/fail" })).toBe(2);
    expect(
      value("response_total", { ...out, route: "prefix:/fail", classification: "failure" }),
    ).toBe(2);
    expect(
      value("response_total", { ...out, route: "list-books", classification: "success" }),
    ).toBe(3);
    expect(value("response_latency_ms_count", { ...out, route: "list-books" })).toBe(3);
  });

  test("a duplicate or reserved route name is refused with its path", async () => {
    const file = writeConfig(tempDir(), {
      outbound: {
        services: [
          {
            name: "books",
            discovery: { static: ["127.0.0.1:1"] },
            routes: [
              { name: "read", match: { pathPrefix: "/a" } },
              { name: "read", match: { pathPrefix: "/b" } },
              { name: "default", match: { pathPrefix: "/c" } },
            ],
          },
        ],
      },
    });
    const { code, stdout, stderr } = await runCli(["check", "--config", file]);
    expect(code).toBe(1);
    const out = stdout + stderr;
    expect(out).toMatch(/outbound\.services\[0\]\.routes\[1\]\.name.*unique in its service/);
    expect(out).toMatch(/outbound\.services\[0\]\.routes\[2\]\.name.*other than 'default'/);
  });
});

describe("derived route names", () => {
  test("name what the route matches and stay put when routes are reordered", () => {
    expect(routeMatchName({})).toBe("any");
    expect(
      routeMatchName({
        methods: ["get", "POST"],
        pathPrefix: "/api",
        headers: { "X-Canary": "1", "x-user": { regex: "a.*" } },
      }),
    ).toBe("GET,POST prefix:/api header:x-canary=1 header:x-user~a.*");
    expect(routeMatchName({ path: "/health" })).toBe("exact:/health");
    const a = { match: { pathPrefix: "/a" } };
    const b = { match: { path: "/b" } };
    expect(routeNames([a, b])).toEqual(["prefix:/a", "exact:/b"]);
    expect(routeNames([b, a])).toEqual(["exact:/b", "prefix:/a"]);
    // Same match twice: the later one is told apart by its index.
    expect(routeNames([a, { name: "x", match: {} }, a])).toEqual(["prefix:/a", "x", "prefix:/a#2"]);
  });
});
