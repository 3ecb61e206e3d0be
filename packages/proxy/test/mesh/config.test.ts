import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { describe, expect, it } from "vitest";
import { configJsonSchema, createLogger, MeshProxy, validateConfig } from "../../src/index.js";
import { echoApp, get } from "./fixtures.js";

const problems = (raw: unknown) => {
  const r = validateConfig(raw);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
};

describe("security config", () => {
  it("identity.workloadApi is exclusive with issuer and files, and names a Unix socket", () => {
    const withIdentity = (identity: Record<string, unknown>) =>
      problems({
        identity: { trustDomain: "example.org", id: "spiffe://example.org/ns/a/sa/b", ...identity },
        inbound: { app: "127.0.0.1:8080" },
      });
    expect(
      withIdentity({
        workloadApi: { socket: "/run/spire/agent.sock" },
        files: { cert: "a", key: "b", bundle: "c" },
      }),
    ).toEqual([
      "identity: expected exactly one of issuer, files or workloadApi, got files and workloadApi",
    ]);
    expect(withIdentity({})).toEqual([
      "identity: expected exactly one of issuer, files or workloadApi, got none",
    ]);
    expect(withIdentity({ workloadApi: { socket: "tcp://127.0.0.1:8081" } })).toEqual([
      'identity.workloadApi.socket: expected a Unix socket path or unix:///absolute/path (tcp is not supported), got "tcp://127.0.0.1:8081"',
    ]);
    expect(withIdentity({ workloadApi: { socket: "unix://run/agent.sock" } })).toHaveLength(1);
    for (const socket of ["unix:///run/spire/agent.sock", "unix:agent.sock", "agent.sock"])
      expect(withIdentity({ workloadApi: { socket } })).toEqual([]);
  });

  it("has defaults a plaintext mesh keeps working with, and accepts both endpoint forms", () => {
    const r = validateConfig({
      identity: {
        trustDomain: "example.org",
        id: "spiffe://example.org/ns/default/sa/web",
        issuer: { url: "https://127.0.0.1:8443", tokenFile: "./token", bundleFile: "./bundle.pem" },
      },
      outbound: {
        services: [
          {
            name: "books",
            discovery: {
              static: [
                "127.0.0.1:9001",
                { address: "127.0.0.1:4143", identity: "spiffe://example.org/ns/default/sa/books" },
              ],
            },
          },
        ],
      },
      inbound: {
        app: "127.0.0.1:8080",
        policy: {
          default: "all-authenticated",
          rules: [
            {
              allow: {
                identities: [
                  "spiffe://example.org/ns/default/sa/web",
                  "spiffe://example.org/ns/prod/*",
                ],
              },
              routes: [{ pathPrefix: "/api" }],
            },
            {
              allow: { networks: ["127.0.0.0/8", { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] }] },
            },
          ],
        },
        opaquePorts: [5432, 6379],
      },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.outbound?.requireIdentity).toBe(false);
    expect(r.config.outbound?.tcp).toEqual([]);
    expect(r.config.identity?.renewal).toEqual({
      fraction: 0.7,
      min: 10_000,
      max: 86_400_000,
      retryInitial: 1_000,
      retryMax: 30_000,
    });
    const plain = validateConfig({ inbound: { app: "127.0.0.1:8080" } });
    expect(plain.ok && plain.config.inbound?.opaquePorts).toEqual([
      25, 587, 3306, 4444, 5432, 6379, 9300, 11211,
    ]);
    expect(plain.ok && plain.config.inbound?.policy.default).toBe("all-unauthenticated");
  });

  it("reports every security problem with its path", () => {
    expect(
      problems({
        identity: {
          trustDomain: "example.org",
          id: "spiffe://other.org/x",
          files: { cert: "c", key: "k", bundle: "b" },
          issuer: { url: "ftp://x", tokenFile: "t" },
        },
        inbound: {
          app: "127.0.0.1:1",
          opaquePorts: [0],
          ports: { "6379": "nowhere" },
          policy: {
            default: "sometimes",
            rules: [{ allow: { identities: ["/ns/x"], networks: ["10.0.0.0/33"] } }],
          },
        },
        outbound: {
          tcp: [
            {
              name: "redis",
              listen: "127.0.0.1:6379",
              discovery: { dns: { name: "redis", port: 6379 } },
            },
          ],
        },
      }),
    ).toEqual([
      'identity.issuer.url: expected an http(s):// URL, got "ftp://x"',
      "identity: expected exactly one of issuer, files or workloadApi, got issuer and files",
      'outbound.tcp[0].discovery: expected static discovery (dns, file and kubernetes discovery are for HTTP services), got {"dns":{"name":"redis","port":6379}}',
      'inbound.policy.default: expected all-unauthenticated, all-authenticated, cluster-authenticated, deny or audit, got "sometimes"',
      // The policy's identity patterns and networks are checked by its own schema, in order.
      'inbound.policy.rules[0].allow.identities[0]: expected a SPIFFE ID, "*" or a spiffe:// pattern (bare paths would match every trust domain), got "/ns/x"',
      'inbound.policy.rules[0].allow.networks[0]: expected a prefix length in 0..32 after "/", got "10.0.0.0/33"',
      "inbound.opaquePorts[0]: expected integer in 1..65535, got 0",
      'inbound.ports.6379: expected host:port, got "nowhere"',
      // Cross-field checks (SPIFFE IDs against the trust domain) report in the same round.
      'identity.id: expected a SPIFFE ID in example.org, got "spiffe://other.org/x" (it is in trust domain other.org)',
    ]);
    // The same problems on their own.
    expect(
      problems({
        identity: {
          trustDomain: "example.org",
          id: "spiffe://other.org/x",
          files: { cert: "c", key: "k", bundle: "b" },
        },
        inbound: {
          app: "127.0.0.1:1",
          policy: { rules: [{ allow: { identities: ["/ns/x"], networks: ["10.0.0.0/33"] } }] },
        },
      }),
    ).toEqual([
      'inbound.policy.rules[0].allow.identities[0]: expected a SPIFFE ID, "*" or a spiffe:// pattern (bare paths would match every trust domain), got "/ns/x"',
      'inbound.policy.rules[0].allow.networks[0]: expected a prefix length in 0..32 after "/", got "10.0.0.0/33"',
      'identity.id: expected a SPIFFE ID in example.org, got "spiffe://other.org/x" (it is in trust domain other.org)',
    ]);
    expect(
      problems({
        outbound: {
          requireIdentity: true,
          services: [
            {
              name: "b",
              discovery: {
                static: [{ address: "127.0.0.1:1", identity: "spiffe://example.org/b" }],
              },
            },
          ],
        },
        inbound: { app: "127.0.0.1:1", policy: { default: "cluster-authenticated" } },
      }),
    ).toEqual([
      "inbound.policy.default: expected identity.trustDomain to be configured for cluster-authenticated, got nothing",
      "outbound.requireIdentity: expected identity to be configured (requireIdentity sends only over mTLS), got true",
      'outbound.services[0].discovery.static[0].identity: expected the top-level identity section to be configured for mTLS endpoints, got "spiffe://example.org/b"',
    ]);
  });

  it("publishes the new fields in the JSON Schema", () => {
    const text = JSON.stringify(configJsonSchema());
    for (const field of [
      "identity",
      "trustDomain",
      "requireIdentity",
      "opaquePorts",
      "policy",
      "tcp",
      "targetPort",
    ])
      expect(text).toContain(`"${field}"`);
  });

  it("audit: admits everything and records what it would have denied", async () => {
    const app = await echoApp();
    const r = validateConfig({
      admin: { listen: "127.0.0.1:0" },
      inbound: { listen: "127.0.0.1:0", app: app.address, policy: { default: "audit" } },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const p = await MeshProxy.start({ config: r.config, logger: createLogger("silent") });
    const events: Record<string, unknown>[] = [];
    const onEvent = (e: unknown) => events.push(e as Record<string, unknown>);
    subscribe("mesh:authz:decision", onEvent);
    try {
      const res = await get(p.addresses.inbound as string, "app", "/x", {
        "mesh-client-id": "spiffe://forged/x",
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).headers["mesh-client-id"]).toBeUndefined();
      expect(events).toEqual([
        expect.objectContaining({
          allowed: true,
          audit: true,
          protocol: "http",
          reason: "default:audit",
        }),
      ]);
      expect(p.metrics.render()).toMatch(
        /inbound_http_authz_allow_total\{[^}]*reason="default:audit"[^}]*\} 1/,
      );
    } finally {
      unsubscribe("mesh:authz:decision", onEvent);
      await p.shutdown(0);
      await app.close();
    }
  });
});

describe("reloading the identity section", () => {
  it("warns precisely: the changed fields, and the identity that keeps serving until a restart", async () => {
    const base = {
      admin: { listen: "127.0.0.1:0" },
      identity: {
        trustDomain: "example.org",
        id: "spiffe://example.org/ns/default/sa/web",
        // Never answers: the proxy starts, waiting for its first SVID.
        issuer: { url: "http://127.0.0.1:1", tokenFile: "./token" },
      },
      outbound: { listen: "127.0.0.1:0", services: [] },
    };
    const parse = (raw: unknown) => {
      const r = validateConfig(raw);
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      return r.config;
    };
    const p = await MeshProxy.start({ config: parse(base), logger: createLogger("silent") });
    try {
      const changed = parse({
        ...base,
        identity: {
          ...base.identity,
          id: "spiffe://example.org/ns/default/sa/other",
          issuer: { ...base.identity.issuer, bundleRefresh: "5s" },
        },
      });
      expect(p.reload(changed)).toEqual([
        "identity.id, identity.issuer.bundleRefresh changed: identity changes need a restart; until then the proxy keeps serving as spiffe://example.org/ns/default/sa/web with certificates from the issuer http://127.0.0.1:1",
      ]);
      // The running identity, and the effective config (/config), are the ones it started with.
      expect(p.identity?.id).toBe("spiffe://example.org/ns/default/sa/web");
      expect(p.effectiveConfig.identity?.id).toBe("spiffe://example.org/ns/default/sa/web");
      const { identity: _dropped, ...withoutIdentity } = base;
      expect(p.reload(parse(withoutIdentity))).toEqual([
        "removing identity needs a restart; until then the proxy keeps serving mTLS as spiffe://example.org/ns/default/sa/web",
      ]);
    } finally {
      await p.shutdown(0);
    }
  });
});
