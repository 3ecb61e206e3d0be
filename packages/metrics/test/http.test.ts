import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import { Agent, Pool, request as undiciRequest } from "undici";
import { Agent as Agent7, Pool as Pool7, request as undici7Request } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  GoldenSignals,
  instrumentServer,
  metrics,
  NOOP_SIGNALS,
  renderPrometheus,
} from "../src/index.js";
import { close, listen, manualClock, sampleOf, waitFor } from "./helpers/net.js";
import { ACCEPTED_LINT, promtoolCheck } from "./helpers/promtool.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A server whose handler advances the clock by `?delay=` ms, then answers `?status=`. */
function plan(url: string) {
  const u = new URL(url, "http://x");
  return {
    status: Number(u.searchParams.get("status") ?? 200),
    delay: Number(u.searchParams.get("delay") ?? 0),
    reset: u.searchParams.has("reset"),
  };
}

const MIX = [
  { status: 200, delay: 3 },
  { status: 200, delay: 7 },
  { status: 200, delay: 7 },
  { status: 404, delay: 15 },
  { status: 503, delay: 250 },
  { status: 503, delay: 250 },
];

function expectMix(text: string, labels: string) {
  const s = (extra: string) => `{${labels},${extra}}`;
  expect(sampleOf(text, `request_total{${labels}}`)).toBe(7);
  expect(sampleOf(text, `response_total${s('classification="success",status_code="200"')}`)).toBe(
    3,
  );
  expect(sampleOf(text, `response_total${s('classification="success",status_code="404"')}`)).toBe(
    1,
  );
  expect(sampleOf(text, `response_total${s('classification="failure",status_code="503"')}`)).toBe(
    2,
  );
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="200",le="2"')}`)).toBe(0);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="200",le="3"')}`)).toBe(1);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="200",le="5"')}`)).toBe(1);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="200",le="10"')}`)).toBe(3);
  expect(sampleOf(text, `response_latency_ms_sum{${labels},status_code="200"}`)).toBe(17);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="404",le="10"')}`)).toBe(0);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="404",le="20"')}`)).toBe(1);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="503",le="200"')}`)).toBe(0);
  expect(sampleOf(text, `response_latency_ms_bucket${s('status_code="503",le="300"')}`)).toBe(2);
  expect(sampleOf(text, `response_latency_ms_count{${labels},status_code="503"}`)).toBe(2);
}

describe.each([
  ["undici 8", Agent, undiciRequest],
  ["undici 7", Agent7, undici7Request],
] as const)("HTTP/1.1 with %s", (_name, AgentClass, request) => {
  it("records exact inbound (instrumentServer) and outbound (metrics interceptor) signals for a known mix", async ({
    skip,
  }) => {
    skip(missingPeer("promtool"), "needs promtool");
    const clock = manualClock(1000);
    const inbound = new GoldenSignals();
    const outbound = new GoldenSignals();
    const server = http.createServer((req, res) => {
      const p = plan(req.url!);
      clock.t += p.delay;
      if (p.reset) {
        res.writeHead(p.status);
        res.write("partial");
        setImmediate(() => req.socket.destroy());
        return;
      }
      res.writeHead(p.status, { "content-type": "text/plain" });
      res.end("body");
    });
    instrumentServer(server, { signals: inbound, clock });
    const port = await listen(server);
    const agent = new (AgentClass as typeof Agent)().compose(metrics({ signals: outbound, clock }));
    cleanups.push(
      () => close(server),
      () => agent.close(),
    );
    const origin = `http://127.0.0.1:${port}`;

    for (const m of MIX) {
      const res = await request(`${origin}/?status=${m.status}&delay=${m.delay}`, {
        dispatcher: agent as never,
      });
      await res.body.text();
      expect(res.statusCode).toBe(m.status);
    }
    // one response cut off mid-body: a stream error on both sides
    const closed = once(server, "request");
    await expect(
      request(`${origin}/?reset&status=206&delay=40`, { dispatcher: agent as never }).then((r) =>
        r.body.text(),
      ),
    ).rejects.toThrow();
    await closed;
    // the server sees its socket close after the client error; wait for its record
    await waitFor(() =>
      renderPrometheus(inbound.registry).includes('classification="failure",status_code="206"'),
    );

    const outText = renderPrometheus(outbound.registry);
    const ol = `direction="outbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    expectMix(outText, ol);
    expect(
      sampleOf(outText, `response_total{${ol},classification="failure",status_code="206"}`),
    ).toBe(1);
    expect(sampleOf(outText, `response_latency_ms_bucket{${ol},status_code="206",le="40"}`)).toBe(
      1,
    );

    const inText = renderPrometheus(inbound.registry);
    const il = `direction="inbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    expectMix(inText, il);
    expect(
      sampleOf(inText, `response_total{${il},classification="failure",status_code="206"}`),
    ).toBe(1);

    for (const text of [outText, inText]) {
      const check = await promtoolCheck(text);
      expect(check.code).not.toBe(1);
      expect(check.problems.filter((p) => !ACCEPTED_LINT.test(p))).toEqual([]);
    }
  });
});

// undici 8's compose() tells the interceptor the pool's origin; undici 7's does not, so there
// requests name their origin in the options (as the README says).
describe.each([
  ["undici 8", Pool, false],
  ["undici 7", Pool7, true],
] as const)("metrics() composed onto a %s Pool", (_name, PoolClass, originInOptions) => {
  it("labels every request with the pool's origin, with and without a route function", async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(req.url === "/missing" ? 404 : 200);
      res.end("ok");
    });
    const port = await listen(server);
    const origin = `http://127.0.0.1:${port}`;
    const plain = new GoldenSignals();
    const routed = new GoldenSignals();
    const pool = new (PoolClass as typeof Pool)(origin);
    const pools = [
      pool.compose(metrics({ signals: plain, backend: "b" })),
      pool.compose(
        metrics({ signals: routed, route: (o) => (o.path === "/missing" ? "missing" : "other") }),
      ),
    ];
    cleanups.push(
      () => close(server),
      () => pool.close(),
    );
    for (const p of pools) {
      for (const path of ["/", "/missing", "/a"]) {
        const r = await p.request({ path, method: "GET", ...(originInOptions ? { origin } : {}) });
        await r.body.text();
      }
    }
    const a = `direction="outbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    const plainText = renderPrometheus(plain.registry);
    expect(sampleOf(plainText, `request_total{${a},backend="b"}`)).toBe(3);
    expect(
      sampleOf(
        plainText,
        `response_total{${a},backend="b",classification="success",status_code="200"}`,
      ),
    ).toBe(2);
    expect(
      sampleOf(
        plainText,
        `response_total{${a},backend="b",classification="success",status_code="404"}`,
      ),
    ).toBe(1);
    const routedText = renderPrometheus(routed.registry);
    expect(sampleOf(routedText, `request_total{${a},route="missing"}`)).toBe(1);
    expect(sampleOf(routedText, `request_total{${a},route="other"}`)).toBe(2);
  });
});

describe("HTTP/2", () => {
  it("records exact signals over h2c: undici (useH2c) → instrumented node:http2 server", async () => {
    const clock = manualClock();
    const inbound = new GoldenSignals();
    const outbound = new GoldenSignals();
    const server = http2.createServer((req, res) => {
      const p = plan(req.url);
      clock.t += p.delay;
      res.writeHead(p.status);
      if (p.reset) {
        res.write("partial", () => res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
        return;
      }
      res.end("body");
    });
    instrumentServer(server, { signals: inbound, clock, route: (_m, path) => path.split("?")[0] });
    const port = await listen(server);
    const agent = new Agent({ allowH2: true, useH2c: true } as never).compose(
      metrics({ signals: outbound, clock, route: (o) => o.path.split("?")[0] }),
    );
    cleanups.push(
      () => close(server),
      () => agent.close(),
    );
    const origin = `http://127.0.0.1:${port}`;
    for (const m of MIX) {
      const res = await undiciRequest(`${origin}/items?status=${m.status}&delay=${m.delay}`, {
        dispatcher: agent,
      });
      await res.body.text();
      expect(res.statusCode).toBe(m.status);
    }
    // a stream the server resets after headers: a failure on both sides
    await expect(
      undiciRequest(`${origin}/items?reset&status=206&delay=40`, { dispatcher: agent }).then((r) =>
        r.body.text(),
      ),
    ).rejects.toThrow();
    const ol = `direction="outbound",authority="127.0.0.1:${port}",tls="no_identity",route="/items"`;
    const il = `direction="inbound",authority="127.0.0.1:${port}",tls="no_identity",route="/items"`;
    const outText = renderPrometheus(outbound.registry);
    expectMix(outText, ol);
    expect(
      sampleOf(outText, `response_total{${ol},classification="failure",status_code="206"}`),
    ).toBe(1);
    await waitFor(() => renderPrometheus(inbound.registry).includes('status_code="206"'));
    const inText = renderPrometheus(inbound.registry);
    expectMix(inText, il);
    expect(
      sampleOf(inText, `response_total{${il},classification="failure",status_code="206"}`),
    ).toBe(1);
    expect(sampleOf(inText, `response_latency_ms_bucket{${il},status_code="206",le="40"}`)).toBe(1);
  });
});

describe("switching off", () => {
  it("NOOP_SIGNALS has the same API and records nothing", async () => {
    const server = http.createServer((_req, res) => res.end("ok"));
    instrumentServer(server, { signals: NOOP_SIGNALS });
    const port = await listen(server);
    const agent = new Agent().compose(metrics({ signals: NOOP_SIGNALS }));
    cleanups.push(
      () => close(server),
      () => agent.close(),
    );
    const res = await undiciRequest(`http://127.0.0.1:${port}/`, { dispatcher: agent });
    expect(await res.body.text()).toBe("ok");
  });
});
