import { GoldenSignals, renderPrometheus, snapshot, summarize } from "@mesh/metrics";
import { describe, expect, it } from "vitest";
import {
  computeProxyStat,
  endpointTotals,
  parseAdminTargets,
  parsePrometheusText,
  renderStatTable,
  ScrapeHistory,
  StatError,
  trafficKey,
  trafficTotals,
} from "../../src/stat/index.js";
import type { AdminScrape } from "../../src/stat/scrape.js";

const target = { name: "web", address: "127.0.0.1:4191" };

function scrapeOf(signals: GoldenSignals, timeMs: number, endpoints: unknown = []): AdminScrape {
  return {
    target,
    timeMs,
    traffic: trafficTotals(parsePrometheusText(renderPrometheus(signals.registry))),
    endpoints: endpointTotals(endpoints),
  };
}

describe("parsePrometheusText", () => {
  it("reads what @mesh/metrics renders, escaped label values included", () => {
    const signals = new GoldenSignals();
    const odd = 'we"ird\\host\nname';
    const h = signals.http({
      direction: "inbound",
      authority: odd,
      tls: true,
      clientId: "spiffe://td/ns/a/sa/web",
    });
    h.request();
    h.response(200, -1, 3);
    const samples = parsePrometheusText(renderPrometheus(signals.registry));
    const req = samples.find((s) => s.name === "request_total");
    expect(req).toEqual({
      name: "request_total",
      labels: {
        direction: "inbound",
        authority: odd,
        tls: "true",
        client_id: "spiffe://td/ns/a/sa/web",
      },
      value: 1,
    });
    const inf = samples.find(
      (s) => s.name === "response_latency_ms_bucket" && s.labels.le === "+Inf",
    );
    expect(inf?.value).toBe(1);
  });

  it("accepts timestamps, special values and blank lines", () => {
    const samples = parsePrometheusText(
      '# TYPE x gauge\n\nx{a="1"} +Inf 1700000000\ny NaN\nz -3e2\n',
    );
    expect(samples.map((s) => s.value)).toEqual([Number.POSITIVE_INFINITY, Number.NaN, -300]);
  });

  it("names the line that is not a sample", () => {
    let error: unknown;
    try {
      parsePrometheusText('ok 1\nbad{a="1" 2\n');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StatError);
    expect((error as StatError).code).toBe("MESH_PROXY_STAT_BAD_RESPONSE");
    expect((error as Error).message).toMatch(/^metrics line 2: /);
  });
});

describe("trafficTotals and computeProxyStat", () => {
  it("match @mesh/metrics' own summarize over the same window", () => {
    const signals = new GoldenSignals();
    const a = signals.http({
      direction: "outbound",
      authority: "books",
      route: "r1",
      backend: "books",
    });
    const b = signals.http({
      direction: "outbound",
      authority: "books",
      route: "r2",
      backend: "books",
    });
    const other = signals.http({ direction: "inbound", authority: "web" });
    a.request();
    a.response(200, -1, 2);
    const filter = (l: Readonly<Record<string, string | undefined>>) =>
      l.direction === "outbound" && l.authority === "books";
    const before = snapshot(signals.registry, 1_000, filter);
    const first = scrapeOf(signals, 1_000);
    for (let i = 0; i < 40; i++) {
      a.request();
      a.response(200, -1, 1 + (i % 9) * 7);
      b.request();
      b.response(i % 5 === 0 ? 503 : 200, -1, 15 + i * 3);
    }
    b.request();
    b.streamError(4000);
    other.request();
    other.response(200, -1, 1);
    const after = snapshot(signals.registry, 3_000, filter);
    const second = scrapeOf(signals, 3_000);
    const expected = summarize(before, after);
    const stat = computeProxyStat(first, second);
    expect(stat.windowSeconds).toBe(2);
    const row = stat.traffic.find((r) => r.direction === "outbound" && r.authority === "books");
    expect(row).toMatchObject({
      successRate: expected.successRate,
      rps: expected.rps,
      mtls: "no",
      window: { requests: 81, responses: 81 },
      total: { requests: 82, successes: 73, failures: 9 },
    });
    expect(row?.p50).toBeCloseTo(expected.p50, 9);
    expect(row?.p95).toBeCloseTo(expected.p95, 9);
    expect(row?.p99).toBeCloseTo(expected.p99, 9);
    expect(stat.traffic.map((r) => `${r.direction} ${r.authority}`)).toEqual([
      "inbound web",
      "outbound books",
    ]);
  });

  it("reports mTLS from tls labels and lists peer identities", () => {
    const signals = new GoldenSignals();
    const meshed = signals.http({
      direction: "outbound",
      authority: "books",
      tls: true,
      serverId: "spiffe://td/ns/d/sa/books",
    });
    const plain = signals.http({ direction: "outbound", authority: "books", tls: false });
    const only = signals.http({
      direction: "inbound",
      authority: "books",
      tls: true,
      clientId: "spiffe://td/ns/d/sa/web",
    });
    const first = scrapeOf(signals, 0);
    meshed.request();
    meshed.response(200, -1, 1);
    only.request();
    only.response(200, -1, 1);
    plain.request();
    plain.response(200, -1, 1);
    const stat = computeProxyStat(first, scrapeOf(signals, 1_000));
    const out = stat.traffic.find((r) => r.direction === "outbound");
    const inb = stat.traffic.find((r) => r.direction === "inbound");
    expect(out).toMatchObject({
      mtls: "partial",
      tlsShare: 0.5,
      serverIds: ["spiffe://td/ns/d/sa/books"],
    });
    expect(inb).toMatchObject({ mtls: "yes", tlsShare: 1, clientIds: ["spiffe://td/ns/d/sa/web"] });
    expect(trafficTotals([]).get(trafficKey("inbound", "x"))).toBeUndefined();
  });

  it("without an earlier scrape covers the whole life and leaves rates unknown", () => {
    const signals = new GoldenSignals();
    const h = signals.http({ direction: "inbound", authority: "web" });
    h.request();
    h.response(500, -1, 1);
    h.request();
    h.response(200, -1, 1);
    const stat = computeProxyStat(undefined, scrapeOf(signals, 5_000));
    expect(stat.windowSeconds).toBeNull();
    expect(stat.traffic[0]).toMatchObject({ successRate: 0.5, rps: null });
  });
});

describe("endpoint shares", () => {
  const doc = (fast: number, slow: number, failed: number) => [
    {
      service: "books",
      backends: [
        {
          name: "books",
          weight: 1,
          endpoints: [
            {
              address: "127.0.0.1:1",
              state: "ready",
              requests: fast,
              failures: 0,
              pending: 1,
              cost: 3,
              rttMs: 3,
              failureRate: 0,
              protocol: "http1",
            },
            {
              address: "127.0.0.1:1",
              state: "ready",
              requests: 10,
              failures: 0,
              pending: 0,
              cost: 2,
              rttMs: 2,
              failureRate: 0.01,
              protocol: "h2c",
            },
            {
              address: "127.0.0.1:2",
              state: "ejected",
              requests: slow,
              failures: failed,
              pending: 0,
              cost: 50,
              rttMs: 50,
              failureRate: failed / (slow + 10),
              identity: "spiffe://td/ns/d/sa/books",
              protocol: "http1",
            },
          ],
        },
      ],
    },
  ];

  it("are the per-backend split of requests in the window; protocol balancers merge", () => {
    const signals = new GoldenSignals();
    const stat = computeProxyStat(
      scrapeOf(signals, 0, doc(100, 20, 0)),
      scrapeOf(signals, 2_000, doc(190, 30, 5)),
    );
    expect(stat.endpoints).toEqual([
      expect.objectContaining({
        address: "127.0.0.1:1",
        share: 0.9,
        rps: 45,
        successRate: 1,
        pending: 1,
        cost: 3,
        failureRate: 0.01,
        total: { requests: 200, failures: 0 },
      }),
      expect.objectContaining({
        address: "127.0.0.1:2",
        share: 0.1,
        rps: 5,
        successRate: 0.5,
        state: "ejected",
        identity: "spiffe://td/ns/d/sa/books",
        failureRate: 0.125,
      }),
    ]);
  });

  it("show the balancer's failure rate next to the window's success rate", () => {
    const signals = new GoldenSignals();
    const stat = computeProxyStat(
      scrapeOf(signals, 0, doc(100, 20, 0)),
      scrapeOf(signals, 2_000, doc(190, 30, 5)),
    );
    const lines = renderStatTable([stat]).trimEnd().split("\n");
    const header = lines.findIndex((l) => l.startsWith("PROXY  SERVICE"));
    expect(lines.slice(header)).toEqual([
      "PROXY  SERVICE  ENDPOINT     IDENTITY                   STATE    SHARE      RPS  SUCCESS  FAILURE_RATE  EWMA_RTT  PENDING",
      "web    books    127.0.0.1:1  -                          ready    90.0%  45.0rps  100.00%         1.00%     3.0ms        1",
      "web    books    127.0.0.1:2  spiffe://td/ns/d/sa/books  ejected  10.0%   5.0rps   50.00%        12.50%      50ms        0",
    ]);
  });

  it("read a missing or bad failureRate as 0 and clamp it to 1", () => {
    const totals = endpointTotals([
      {
        service: "s",
        backends: [
          {
            name: "s",
            endpoints: [
              { address: "127.0.0.1:1", requests: 1 },
              { address: "127.0.0.1:2", failureRate: "x" },
              { address: "127.0.0.1:3", failureRate: 7 },
            ],
          },
        ],
      },
    ]);
    expect([...totals.values()].map((e) => e.failureRate)).toEqual([0, 0, 1]);
  });

  it("reject a document of another shape", () => {
    expect(() => endpointTotals({ nope: 1 })).toThrow(
      /^endpoints: expected a list, got \{"nope":1\}$/,
    );
    expect(() => endpointTotals([{ service: "x" }])).toThrow(StatError);
  });
});

describe("parseAdminTargets", () => {
  it("takes comma lists, names and URLs", () => {
    expect(parseAdminTargets(["web=127.0.0.1:4191,127.0.0.1:4192", "http://[::1]:9/"])).toEqual([
      { name: "web", address: "127.0.0.1:4191" },
      { name: "127.0.0.1:4192", address: "127.0.0.1:4192" },
      { name: "[::1]:9", address: "[::1]:9" },
    ]);
  });

  it("names the bad entry", () => {
    expect(() => parseAdminTargets(["127.0.0.1:1,web=nope"])).toThrow(
      '--admin[1]: expected [name=]host:port, got "web=nope"',
    );
    expect(() => parseAdminTargets([])).toThrow(
      "--admin: expected at least one [name=]host:port, got nothing",
    );
  });
});

describe("renderStatTable", () => {
  it("aligns columns, right-aligns numbers and shows errors per row", () => {
    const signals = new GoldenSignals();
    const h = signals.http({ direction: "outbound", authority: "books.default.svc:8080" });
    const first = scrapeOf(signals, 0);
    for (let i = 0; i < 10; i++) {
      h.request();
      h.response(i === 0 ? 503 : 200, -1, 12);
    }
    const ok = computeProxyStat(first, scrapeOf(signals, 1_000));
    const down = computeProxyStat(undefined, {
      target: { name: "books", address: "127.0.0.1:9" },
      timeMs: 0,
      traffic: new Map(),
      endpoints: new Map(),
      error: new StatError(
        "MESH_PROXY_STAT_SCRAPE_FAILED",
        "GET http://127.0.0.1:9/metrics: ECONNREFUSED",
      ),
    });
    const lines = renderStatTable([ok, down]).trimEnd().split("\n");
    expect(lines).toEqual([
      "PROXY  DIRECTION  AUTHORITY               MTLS  SUCCESS      RPS  LATENCY_P50  LATENCY_P95  LATENCY_P99",
      "web    outbound   books.default.svc:8080  no     90.00%  10.0rps         15ms         20ms         20ms",
      "books  error: GET http://127.0.0.1:9/metrics: ECONNREFUSED",
    ]);
  });
});

describe("ScrapeHistory", () => {
  it("compares with the newest scrape at least one window old", () => {
    const s = (timeMs: number): AdminScrape => ({
      target,
      timeMs,
      traffic: new Map(),
      endpoints: new Map(),
    });
    const h = new ScrapeHistory(1, 4_000);
    expect(h.push([s(0)])).toEqual([undefined]);
    expect(h.push([s(2_000)])[0]?.timeMs).toBe(0); // not a full window yet: the oldest
    expect(h.push([s(4_000)])[0]?.timeMs).toBe(0);
    expect(h.push([s(6_000)])[0]?.timeMs).toBe(2_000);
    expect(h.push([s(8_000)])[0]?.timeMs).toBe(4_000);
  });
});
