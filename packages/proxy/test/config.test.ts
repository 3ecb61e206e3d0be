import { readFileSync } from "node:fs";
import { failureRateConfig, peakEwmaConfig, pushbackConfig } from "@mesh/balancer";
import { RetryPolicy } from "@mesh/retry";
import { describe, expect, test } from "vitest";
import { configJsonSchema, parseConfigText, parseDuration, validateConfig } from "../src/index.js";
import { runCli, tempDir, writeConfig } from "./helpers.js";

const ISSUE_EXAMPLE = `
admin:    { listen: 127.0.0.1:4191 }
outbound:
  listen: 127.0.0.1:4140
  unknownAuthority: passthrough
  services:
    - name: books
      authorities: [books, "books:8080", books.default.svc.cluster.local]
      discovery: { static: ["127.0.0.1:9001", "127.0.0.1:9002"] }
      timeout: { request: 2s, perTry: 500ms }
      retry: { on: ["5xx"], limit: 2, budget: { ratio: 0.2, minPerSecond: 10, ttl: 10s } }
      failureAccrual: { consecutiveFailures: 7 }
      routes:
        - match: { pathPrefix: /orders, methods: [POST] }
          timeout: { request: 5s }
          retry: { on: [] }
      backends:
        - { name: books-v1, weight: 90, discovery: { static: ["127.0.0.1:9001"] } }
        - { name: books-v2, weight: 10, discovery: { static: ["127.0.0.1:9002"] } }
inbound:
  listen: 0.0.0.0:4143
  app: 127.0.0.1:8080
  maxConcurrentRequests: 10000
`;

describe("config", () => {
  test("the issue's example is valid and durations parse to milliseconds", () => {
    const r = parseConfigText(ISSUE_EXAMPLE);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const svc = r.config.outbound?.services[0];
    expect(svc?.timeout).toEqual({ request: 2_000, perTry: 500 });
    expect(svc?.retry.budget.ttl).toBe(10_000);
    expect(svc?.routes[0]?.timeout?.request).toBe(5_000);
    expect(r.config.shutdown.gracePeriod).toBe(30_000);
  });

  test("an empty config is refused (it would proxy nothing); a minimal one gets every default", () => {
    expect(validateConfig({})).toEqual({
      ok: false,
      problems: [
        {
          path: "",
          message:
            "expected inbound and/or outbound (without either the proxy proxies nothing), got an empty config",
        },
      ],
    });
    const r = validateConfig({ outbound: {} });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.admin.listen).toBe("127.0.0.1:4191");
      expect(r.config.inbound).toBeUndefined();
    }
  });

  test("outbound and inbound defaults", () => {
    const r = validateConfig({ outbound: {}, inbound: { app: "127.0.0.1:8080" } });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.config.outbound?.listen).toBe("127.0.0.1:4140");
    expect(r.config.outbound?.unknownAuthority).toBe("passthrough");
    expect(r.config.inbound?.listen).toBe("0.0.0.0:4143");
    expect(r.config.inbound?.maxConcurrentRequests).toBe(10_000);
  });

  test("a split whose backends all weigh 0 is refused (it would send nothing anywhere)", () => {
    const r = parseConfigText(
      "outbound:\n  services:\n    - name: books\n      backends:\n        - { name: v1, weight: 0, discovery: { static: ['127.0.0.1:1'] } }\n        - { name: v2, weight: 0, discovery: { static: ['127.0.0.1:2'] } }\n",
    );
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]?.path).toBe("outbound.services[0].backends");
      expect(r.problems[0]?.message).toMatch(
        /^expected at least one backend with weight > 0, got \[/,
      );
    }
  });

  test("durations take units", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("2s")).toBe(2_000);
    expect(parseDuration("1m")).toBe(60_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration("2 parsecs")).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
  });

  test("every problem is reported with its path and the bad value", () => {
    const r = parseConfigText(`
outbound:
  unknownAuthority: maybe
  services:
    - name: a
      discovery: { static: ["127.0.0.1:1"] }
    - name: b
      discovery: { static: ["nope"] }
      retry: { limit: "x", on: [5xx, bogus] }
      timeout: { request: soon }
      routes: [ { match: { path: orders }, typo: 1 } ]
    - name: a
      discovery: { dns: { name: a, port: 0 } }
inbound: { listen: 4143 }
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.problems.map((p) => `${p.path}: ${p.message}`);
    expect(lines).toEqual(
      expect.arrayContaining([
        'outbound.unknownAuthority: expected passthrough or deny, got "maybe"',
        'outbound.services[1].retry.limit: expected integer >= 0, got "x"',
        expect.stringMatching(
          /^outbound\.services\[1\]\.retry\.on\[1\]: expected 5xx, .*got "bogus"$/,
        ),
        'outbound.services[1].discovery.static[0]: expected host:port, got "nope"',
        'outbound.services[1].timeout.request: expected a duration such as 500ms, 2s or 1m, got "soon"',
        'outbound.services[1].routes[0].match.path: expected a path starting with /, got "orders"',
        "outbound.services[1].routes[0].typo: unknown field",
        "outbound.services[2].discovery.dns.port: expected integer in 1..65535, got 0",
        "inbound.listen: expected host:port, got 4143",
        "inbound.app: expected host:port, got nothing",
      ]),
    );
  });

  test("service names and authorities must be unique", () => {
    const r = validateConfig({
      outbound: {
        services: [
          { name: "a", discovery: { static: ["127.0.0.1:1"] } },
          { name: "a", authorities: ["b", "A"], discovery: { static: ["127.0.0.1:2"] } },
        ],
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => p.path)).toEqual([
      "outbound.services[1].name",
      "outbound.services[1].authorities[1]",
    ]);
    expect(r.problems[0]?.message).toBe(
      'expected a unique service name (services[0] has it too), got "a"',
    );
  });

  test("MESH_PROXY_* environment overrides apply and are named in errors", () => {
    const ok = validateConfig(
      { inbound: { app: "127.0.0.1:1" } },
      {
        MESH_PROXY_LOG__LEVEL: "debug",
        MESH_PROXY_INBOUND__MAX_CONCURRENT_REQUESTS: "5",
        MESH_PROXY_CONFIG: "x.yaml",
      },
    );
    if (!ok.ok) throw new Error(JSON.stringify(ok.problems));
    expect(ok.config.log.level).toBe("debug");
    expect(ok.config.inbound?.maxConcurrentRequests).toBe(5);
    const bad = validateConfig({}, { MESH_PROXY_INBOUND__APP: "nowhere" });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.problems[0]?.message).toBe(
        'expected host:port, got "nowhere" (from MESH_PROXY_INBOUND__APP)',
      );
  });

  test("YAML syntax errors say where", () => {
    const r = parseConfigText("outbound: [\n");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]?.message).toMatch(/^expected YAML at line \d+, column \d+/);
  });

  test("JSON config files are accepted", () => {
    const r = parseConfigText(JSON.stringify({ inbound: { app: "127.0.0.1:80" } }), "c.json");
    expect(r.ok).toBe(true);
  });

  test("balancer tuning defaults to @mesh/balancer's own defaults", () => {
    const r = validateConfig({
      outbound: { services: [{ name: "a", discovery: { static: ["127.0.0.1:1"] } }] },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const ewma = peakEwmaConfig(undefined);
    const rate = failureRateConfig(undefined);
    expect(r.config.outbound?.services[0]?.balancer).toEqual({
      ewma: { decay: ewma.decayMs, defaultRtt: ewma.defaultRttMs },
      failureRate: {
        decay: rate.decayMs,
        prior: rate.prior,
        failureCostFactor: rate.failureCostFactor,
      },
      pushback: { max: pushbackConfig(undefined).maxMs, costFactor: 1_000 },
      localZoneMaxPending: 10,
    });
  });

  test("balancer tuning takes durations with units and fills the rest with defaults", () => {
    const r = parseConfigText(`
outbound:
  services:
    - name: a
      discovery: { static: ["127.0.0.1:1"] }
      balancer:
        ewma: { decay: 2s, defaultRtt: 100ms }
        failureRate: { prior: 0 }
`);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.config.outbound?.services[0]?.balancer).toEqual({
      ewma: { decay: 2_000, defaultRtt: 100 },
      failureRate: { decay: 5_000, prior: 0, failureCostFactor: 15 },
      pushback: { max: 10_000, costFactor: 1_000 },
      localZoneMaxPending: 10,
    });
  });

  test("outbound.zone is every service's local zone unless the service names its own", () => {
    const r = validateConfig(
      {
        outbound: {
          services: [
            {
              name: "a",
              discovery: { static: [{ address: "127.0.0.1:1", zone: "eu-1a" }, "127.0.0.1:2"] },
            },
            {
              name: "b",
              discovery: { static: ["127.0.0.1:3"] },
              balancer: { localZone: "eu-1b", localZoneMaxPending: 4 },
            },
          ],
        },
      },
      { MESH_PROXY_OUTBOUND__ZONE: "eu-1a" },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const [a, b] = r.config.outbound?.services ?? [];
    expect(r.config.outbound?.zone).toBe("eu-1a");
    expect(a?.balancer).toMatchObject({ localZone: "eu-1a", localZoneMaxPending: 10 });
    expect(a?.discovery?.static?.[0]).toEqual({ address: "127.0.0.1:1", zone: "eu-1a" });
    expect(b?.balancer).toMatchObject({ localZone: "eu-1b", localZoneMaxPending: 4 });
    const off = validateConfig({
      outbound: { services: [{ name: "a", discovery: { static: ["127.0.0.1:1"] } }] },
    });
    if (!off.ok) throw new Error(JSON.stringify(off.problems));
    expect(off.config.outbound?.services[0]?.balancer.localZone).toBeUndefined();
  });

  test("bad balancer tuning is reported with its path and value", () => {
    const r = parseConfigText(`
outbound:
  services:
    - name: a
      discovery: { static: ["127.0.0.1:1"] }
      balancer:
        ewma: { decay: 0ms, defaultRtt: 2m }
        failureRate: { decay: soon, prior: -1, failureCostFactor: 101, penalty: 2 }
        strategy: p2c
        localZone: ""
        localZoneMaxPending: many
  zone: 7
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const at = "outbound.services[0].balancer";
    expect(r.problems.map((p) => `${p.path}: ${p.message}`)).toEqual(
      expect.arrayContaining([
        `${at}.ewma.decay: expected a duration between 1ms and 1h, got "0ms"`,
        `${at}.ewma.defaultRtt: expected a duration between 1ms and 60s, got "2m"`,
        `${at}.failureRate.decay: expected a duration such as 500ms, 2s or 1m, got "soon"`,
        `${at}.failureRate.prior: expected a number in 0..1000000, got -1`,
        `${at}.failureRate.failureCostFactor: expected a number in 0..100, got 101`,
        `${at}.failureRate.penalty: unknown field`,
        `${at}.strategy: unknown field`,
        `${at}.localZone: expected a non-empty string, got ""`,
        `${at}.localZoneMaxPending: expected a number in 0..1000000, got "many"`,
        "outbound.zone: expected a non-empty string, got 7",
      ]),
    );
  });

  test("hedging: services[].hedge and routes[].hedge, bad values named by path", () => {
    const r = parseConfigText(`
outbound:
  services:
    - name: a
      discovery: { static: ["127.0.0.1:1"] }
      hedge: { maxAttempts: 9, nonFatal: ["6xx"], grpcMethods: ["Get"] }
      routes:
        - match: { pathPrefix: /x }
          hedge: { delay: soon, hedgingDelay: 5 }
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.path}: ${p.message}`)).toEqual(
      expect.arrayContaining([
        "outbound.services[0].hedge.delay: expected a duration such as 500ms, 2s or 1m, got nothing",
        "outbound.services[0].hedge.maxAttempts: expected integer in 2..5, got 9",
        expect.stringMatching(
          /^outbound\.services\[0\]\.hedge\.nonFatal\[0\]: expected 5xx, .*got "6xx"$/,
        ),
        'outbound.services[0].hedge.grpcMethods[0]: expected a gRPC method such as /pkg.Service/Method or /pkg.Service/*, got "Get"',
        'outbound.services[0].routes[0].hedge.delay: expected a duration such as 500ms, 2s or 1m, got "soon"',
        "outbound.services[0].routes[0].hedge.hedgingDelay: unknown field",
      ]),
    );
    const ok = parseConfigText(`
outbound:
  services:
    - name: a
      discovery: { static: ["127.0.0.1:1"] }
      hedge: { delay: 50ms }
      routes:
        - match: { pathPrefix: /x }
          hedge: { delay: 10ms, maxAttempts: 3, nonFatal: [unavailable], grpcMethods: [/pkg.Svc/*] }
`);
    expect(ok.ok).toBe(true);
    if (!ok.ok) return;
    const svc = ok.config.outbound?.services[0];
    expect(svc?.hedge).toEqual({ delay: 50, maxAttempts: 2, grpcMethods: [] });
    expect(svc?.routes[0]?.hedge).toEqual({
      delay: 10,
      maxAttempts: 3,
      nonFatal: ["unavailable"],
      grpcMethods: ["/pkg.Svc/*"],
    });
  });

  test("rate limits and adaptive concurrency: bad values are named by path, cross-field rules are @mesh/limit's", () => {
    const r = parseConfigText(`
inbound:
  app: 127.0.0.1:8080
  rateLimit:
    total: { requestsPerSecond: 10 }
    identity: { requestsPerSecond: 20, burst: 0 }
    overrides:
      - { requestsPerSecond: 5, identities: ["spiffe://td/ns/a/sa/x"] }
      - { requestsPerSecond: 5, identities: ["spiffe://td/ns/a/sa/x"] }
  adaptiveConcurrency: { minLimit: 10, maxLimit: 5, percentile: 0, sampleWindow: 2h, gradient: 2 }
outbound:
  services:
    - name: a
      discovery: { static: ["127.0.0.1:1"] }
      rateLimit: { requestsPerSecond: 0, mode: drop, maxWait: 2m }
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.path}: ${p.message}`)).toEqual(
      expect.arrayContaining([
        "inbound.rateLimit.identity.burst: expected a number in 1..1000000000, got 0",
        "inbound.adaptiveConcurrency.maxLimit: expected at least minLimit, got 5",
        "inbound.adaptiveConcurrency.percentile: expected a number in 0 (exclusive)..1, got 0",
        'inbound.adaptiveConcurrency.sampleWindow: expected a duration between 1ms and 1h, got "2h"',
        "inbound.adaptiveConcurrency.gradient: unknown field",
        "outbound.services[0].rateLimit.requestsPerSecond: expected a number > 0, got 0",
        'outbound.services[0].rateLimit.mode: expected fail-fast or queue, got "drop"',
        'outbound.services[0].rateLimit.maxWait: expected a duration between 0ms and 60s, got "2m"',
      ]),
    );
    const ok = parseConfigText(`
inbound:
  app: 127.0.0.1:8080
  rateLimit:
    total: { requestsPerSecond: 10 }
    identity: { requestsPerSecond: 20 }
    overrides:
      - { requestsPerSecond: 5, identities: ["spiffe://td/ns/a/sa/x"] }
      - { requestsPerSecond: 5, identities: ["spiffe://td/ns/a/sa/x"] }
`);
    expect(ok.ok).toBe(false);
    if (ok.ok) return;
    expect(ok.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      "inbound.rateLimit.identity.requestsPerSecond: expected at most total.requestsPerSecond (10), got 20",
    ]);
    const dup = parseConfigText(`
inbound:
  app: 127.0.0.1:8080
  rateLimit:
    overrides:
      - { requestsPerSecond: 5, identities: ["spiffe://td/ns/a/sa/x"] }
      - { requestsPerSecond: 5, identities: ["spiffe://td/ns/a/sa/x"] }
  adaptiveConcurrency: {}
`);
    expect(dup.ok).toBe(false);
    if (dup.ok) return;
    expect(dup.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'inbound.rateLimit.overrides[1].identities[0]: expected a key in one override only, got "spiffe://td/ns/a/sa/x" again',
    ]);
  });

  test("the JSON Schema is generated and shipped in dist", () => {
    const schema = configJsonSchema() as { properties: Record<string, unknown> };
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(["admin", "outbound", "inbound", "log", "shutdown"]),
    );
    const shipped = JSON.parse(
      readFileSync(new URL("../dist/config.schema.json", import.meta.url), "utf8"),
    ) as unknown;
    expect(shipped).toEqual(schema);
    const service = (
      schema as {
        properties: {
          outbound: {
            properties: { services: { items: { properties: Record<string, unknown> } } };
          };
        };
      }
    ).properties.outbound.properties.services.items.properties;
    expect(service.balancer).toMatchObject({
      properties: {
        ewma: { properties: { decay: { anyOf: expect.any(Array) }, defaultRtt: {} } },
        failureRate: {
          properties: {
            decay: { anyOf: expect.any(Array) },
            prior: { default: 10 },
            failureCostFactor: { default: 15 },
          },
        },
      },
    });
  });
});

describe("mesh-proxy check", () => {
  test("exit 0 for a valid config", async () => {
    const file = writeConfig(tempDir(), ISSUE_EXAMPLE);
    const r = await runCli(["check", "--config", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("ok");
  });

  test("exit 1 and every problem with its path", async () => {
    const file = writeConfig(
      tempDir(),
      "outbound:\n  services:\n    - name: a\n      discovery: { static: [x] }\n    - name: b\n      discovery: { static: ['127.0.0.1:1'] }\n      retry: { limit: x }\n",
    );
    const r = await runCli(["check", "--config", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'outbound.services[0].discovery.static[0]: expected host:port, got "x"',
    );
    expect(r.stderr).toContain('outbound.services[1].retry.limit: expected integer >= 0, got "x"');
  });

  test("names the field of a bad rate limit", async () => {
    const file = writeConfig(tempDir(), {
      inbound: {
        app: "127.0.0.1:8080",
        rateLimit: { total: { requestsPerSecond: -1 } },
        adaptiveConcurrency: { buffer: "lots" },
      },
    });
    const r = await runCli(["check", "--config", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "inbound.rateLimit.total.requestsPerSecond: expected a number > 0, got -1",
    );
    expect(r.stderr).toContain(
      'inbound.adaptiveConcurrency.buffer: expected a number in 0..10, got "lots"',
    );
  });

  test("warns (exit 0) where retry settings can never retry anything", async () => {
    const file = writeConfig(tempDir(), {
      outbound: {
        services: [
          {
            name: "orders",
            discovery: { static: ["127.0.0.1:1"] },
            retry: { on: ["5xx"] },
            routes: [
              { name: "create", match: { methods: ["POST"] } },
              { name: "grpc", match: { methods: ["POST"] }, retry: { on: ["unavailable"] } },
              { name: "read", match: { methods: ["GET"] } },
            ],
          },
          {
            name: "off",
            discovery: { static: ["127.0.0.1:1"] },
            retry: { on: ["5xx"], limit: 0 },
          },
          {
            name: "broke",
            discovery: { static: ["127.0.0.1:1"] },
            retry: { budget: { ratio: 0, minPerSecond: 0 } },
            hedge: { delay: "20ms" },
          },
          {
            name: "hedged",
            discovery: { static: ["127.0.0.1:1"] },
            routes: [
              { name: "create", match: { methods: ["POST"] }, hedge: { delay: "20ms" } },
              {
                name: "grpc",
                match: { methods: ["POST"] },
                hedge: { delay: "20ms", grpcMethods: ["/pkg.Svc/*"] },
              },
            ],
          },
        ],
      },
    });
    const r = await runCli(["check", "--config", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("ok (5 warnings)");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toEqual([
      "warning: outbound.services[0].routes[0]: retries nothing: POST is not idempotent and `on` has no gRPC condition; set nonIdempotent: true to retry them",
      "warning: outbound.services[1].retry: retries nothing: limit is 0 while `on` lists conditions",
      "warning: outbound.services[2].retry: retries nothing: the budget allows none (ratio 0, minPerSecond 0)",
      "warning: outbound.services[2].hedge: hedges nothing: the retry budget allows none (ratio 0, minPerSecond 0)",
      "warning: outbound.services[3].routes[0].hedge: hedges nothing: POST is not idempotent and grpcMethods is empty",
    ]);
  });

  test("old field names (maxBodyBytes, backoff.min) still work, with a warning naming the new one", async () => {
    const file = writeConfig(tempDir(), {
      outbound: {
        services: [
          {
            name: "orders",
            discovery: { static: ["127.0.0.1:1"] },
            retry: { maxBodyBytes: 1024, backoff: { min: "10ms", max: "1s" } },
            routes: [{ name: "r", match: { pathPrefix: "/" }, retry: { maxBodyBytes: 2048 } }],
          },
        ],
      },
    });
    const r = await runCli(["check", "--config", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("ok (3 warnings)");
    expect(r.stderr.trim().split("\n")).toEqual([
      "warning: outbound.services[0].retry.maxBodyBytes: renamed to outbound.services[0].retry.maxReplayBytes (the name @mesh/retry's RetryPolicy uses); the old name still works for now",
      "warning: outbound.services[0].retry.backoff.min: renamed to outbound.services[0].retry.backoff.base (the name @mesh/retry's Backoff uses); the old name still works for now",
      "warning: outbound.services[0].routes[0].retry.maxBodyBytes: renamed to outbound.services[0].routes[0].retry.maxReplayBytes (the name @mesh/retry's RetryPolicy uses); the old name still works for now",
    ]);
    const parsed = validateConfig({
      outbound: {
        services: [
          {
            name: "orders",
            discovery: { static: ["127.0.0.1:1"] },
            retry: { maxBodyBytes: 1024, backoff: { min: "10ms" } },
          },
        ],
      },
    });
    expect(parsed.ok && parsed.config.outbound?.services[0]?.retry).toMatchObject({
      maxReplayBytes: 1024,
      backoff: { base: 10, max: 250 },
    });
    const both = validateConfig({
      outbound: {
        services: [
          {
            name: "orders",
            discovery: { static: ["127.0.0.1:1"] },
            retry: { maxBodyBytes: 1, maxReplayBytes: 2 },
          },
        ],
      },
    });
    expect(both.ok ? [] : both.problems).toEqual([
      {
        path: "outbound.services[0].retry.maxBodyBytes",
        message: "expected only maxReplayBytes (maxBodyBytes is its old name), got both",
      },
    ]);
  });

  test("retry defaults are @mesh/retry's own", () => {
    const policy = new RetryPolicy();
    const r = validateConfig({
      outbound: { services: [{ name: "a", discovery: { static: ["127.0.0.1:1"] } }] },
    });
    expect(r.ok && r.config.outbound?.services[0]?.retry).toEqual({
      on: ["5xx", "unavailable"],
      limit: policy.limit,
      budget: {
        ratio: policy.budget?.retryRatio,
        minPerSecond: policy.budget?.minRetriesPerSecond,
        ttl: policy.budget?.ttl,
      },
      maxReplayBytes: policy.maxReplayBytes,
      backoff: { base: policy.backoff.base, max: policy.backoff.max },
      nonIdempotent: false,
    });
  });

  test("--help and --version", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("mesh-proxy check --config <file>");
    const version = await runCli(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
