import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { isMeshError } from "@mesh/core";
import { describe, expect, it } from "vitest";
import {
  AuthzConfigError,
  type AuthzDecisionEvent,
  type AuthzRequest,
  compileAuthzPolicy,
  parseIpAddress,
  parseNetwork,
} from "../../src/inbound/authz/index.js";

const WEB = "spiffe://example.org/ns/default/sa/web";
const PROD_API = "spiffe://example.org/ns/prod/sa/api";
const OTHER_TD = "spiffe://other.org/ns/default/sa/web";

const req = (over: Partial<AuthzRequest> = {}): AuthzRequest => ({
  remoteAddress: "10.1.2.3",
  port: 4143,
  protocol: "http",
  method: "GET",
  path: "/",
  ...over,
});

describe("authz defaults", () => {
  const cases: Array<[string, string | undefined, boolean, boolean, string]> = [
    ["all-unauthenticated", undefined, true, false, "default:all-unauthenticated"],
    ["all-unauthenticated", WEB, true, false, "default:all-unauthenticated"],
    ["all-authenticated", undefined, false, false, "unauthenticated"],
    ["all-authenticated", OTHER_TD, true, false, "default:all-authenticated"],
    ["cluster-authenticated", WEB, true, false, "default:cluster-authenticated"],
    ["cluster-authenticated", OTHER_TD, false, false, "foreign-trust-domain"],
    ["cluster-authenticated", undefined, false, false, "unauthenticated"],
    ["deny", WEB, false, false, "default:deny"],
    ["deny", undefined, false, false, "default:deny"],
    ["audit", undefined, true, true, "default:audit"],
    ["audit", WEB, true, true, "default:audit"],
  ];
  it.each(cases)(
    "%s with client %s → allowed=%s audit=%s (%s)",
    (def, clientId, allowed, audit, reason) => {
      const policy = compileAuthzPolicy({ default: def }, { trustDomain: "example.org" });
      const d = policy.evaluate(req({ clientId }));
      expect(d).toMatchObject({ allowed, audit, reason });
    },
  );

  it("defaults to all-unauthenticated like Linkerd", () => {
    expect(compileAuthzPolicy(undefined).defaultPolicy).toBe("all-unauthenticated");
    expect(compileAuthzPolicy({}).evaluate(req()).allowed).toBe(true);
  });

  it("says whether plaintext clients could ever be admitted", () => {
    expect(compileAuthzPolicy({ default: "deny" }).admitsUnauthenticated).toBe(false);
    expect(compileAuthzPolicy({ default: "audit" }).admitsUnauthenticated).toBe(true);
    expect(
      compileAuthzPolicy({ default: "deny", rules: [{ allow: { networks: ["10.0.0.0/8"] } }] })
        .admitsUnauthenticated,
    ).toBe(true);
    expect(
      compileAuthzPolicy({ default: "deny", rules: [{ allow: { identities: ["*"] } }] })
        .admitsUnauthenticated,
    ).toBe(false);
  });
});

describe("authz identity rules", () => {
  const policy = compileAuthzPolicy({
    default: "deny",
    rules: [
      { allow: { identities: [WEB] } },
      { allow: { identities: ["spiffe://example.org/ns/prod/*"] } },
      { allow: { identities: ["spiffe://trusted.org/*"] } },
      { allow: { identities: ["spiffe://example.org/ns/*/sa/metrics"] } },
    ],
  });
  const cases: Array<[string | undefined, boolean, string]> = [
    [WEB, true, "rules[0]"],
    ["spiffe://example.org/ns/default/sa/web2", false, "default:deny"],
    [PROD_API, true, "rules[1]"],
    ["spiffe://example.org/ns/prod/sa/api/extra", true, "rules[1]"],
    ["spiffe://example.org/ns/prodx/sa/api", false, "default:deny"],
    ["spiffe://other.org/ns/prod/sa/api", false, "default:deny"],
    ["spiffe://trusted.org/anything/at/all", true, "rules[2]"],
    ["spiffe://example.org/ns/staging/sa/metrics", true, "rules[3]"],
    ["spiffe://example.org/ns/staging/sa/other", false, "default:deny"],
    [undefined, false, "default:deny"],
  ];
  it.each(cases)("client %s → %s (%s)", (clientId, allowed, reason) => {
    expect(policy.evaluate(req({ clientId }))).toMatchObject({ allowed, reason });
  });

  it('"*" admits any authenticated client but not plaintext ones', () => {
    const p = compileAuthzPolicy({ default: "deny", rules: [{ allow: { identities: ["*"] } }] });
    expect(p.evaluate(req({ clientId: OTHER_TD })).allowed).toBe(true);
    expect(p.evaluate(req({ clientId: undefined })).allowed).toBe(false);
  });
});

describe("authz network rules", () => {
  const policy = compileAuthzPolicy({
    default: "deny",
    rules: [
      { allow: { networks: [{ cidr: "10.0.0.0/8", except: ["10.9.0.0/16", "10.1.2.3"] }] } },
      { allow: { networks: ["fd00::/8", "127.0.0.0/8"] } },
      { allow: { networks: ["192.168.0.0/16"], identities: [WEB] } },
    ],
  });
  const cases: Array<[string, string | undefined, boolean, string]> = [
    ["10.200.0.1", undefined, true, "rules[0]"],
    ["10.9.3.4", undefined, false, "default:deny"],
    ["10.1.2.3", undefined, false, "default:deny"],
    ["10.1.2.4", undefined, true, "rules[0]"],
    ["11.0.0.1", undefined, false, "default:deny"],
    ["::ffff:10.200.0.1", undefined, true, "rules[0]"],
    ["fd12:3456::1", undefined, true, "rules[1]"],
    ["fe80::1%lo", undefined, false, "default:deny"],
    ["127.0.0.1", undefined, true, "rules[1]"],
    ["192.168.1.1", undefined, false, "default:deny"],
    ["192.168.1.1", WEB, true, "rules[2]"],
    ["192.169.1.1", WEB, false, "default:deny"],
    ["not-an-ip", undefined, false, "default:deny"],
  ];
  it.each(cases)("%s (client %s) → %s (%s)", (remoteAddress, clientId, allowed, reason) => {
    expect(policy.evaluate(req({ remoteAddress, clientId }))).toMatchObject({ allowed, reason });
  });

  it("parses IPv4 and IPv6 CIDRs, normalising host bits and mapped networks", () => {
    expect(parseNetwork("10.1.2.3/8").text).toBe("10.0.0.0/8");
    expect(parseNetwork("2001:db8:0:0:1::/32").text).toBe("2001:db8::/32");
    expect(parseNetwork("::ffff:10.0.0.0/104").text).toBe("10.0.0.0/8");
    expect(parseNetwork("0.0.0.0/0").contains(parseIpAddress("203.0.113.9")!)).toBe(true);
    expect(parseNetwork("::/0").contains(parseIpAddress("2001:db8::1")!)).toBe(true);
    expect(parseNetwork("::1").contains(parseIpAddress("::1")!)).toBe(true);
    expect(parseNetwork("2001:db8::/127").contains(parseIpAddress("2001:db8::1")!)).toBe(true);
    expect(parseNetwork("2001:db8::/128").contains(parseIpAddress("2001:db8::1")!)).toBe(false);
  });
});

describe("authz route rules", () => {
  const policy = compileAuthzPolicy({
    default: "deny",
    rules: [
      {
        allow: { identities: [WEB] },
        routes: [{ pathPrefix: "/api/" }, { path: "/healthz", methods: ["get"] }],
      },
      {
        allow: { networks: ["0.0.0.0/0"] },
        routes: [{ pathPrefix: "/public", methods: ["GET", "HEAD"] }],
      },
    ],
  });
  const cases: Array<
    [string, string, string | undefined, string, boolean, string, string | undefined]
  > = [
    ["http", "/api", WEB, "POST", true, "rules[0]", "prefix:/api"],
    ["http", "/api/books?x=1", WEB, "GET", true, "rules[0]", "prefix:/api"],
    ["http", "/apix", WEB, "GET", false, "default:deny", undefined],
    ["grpc", "/healthz", WEB, "GET", true, "rules[0]", "GET exact:/healthz"],
    ["http", "/healthz", WEB, "POST", false, "default:deny", undefined],
    ["http", "/healthz/x", WEB, "GET", false, "default:deny", undefined],
    ["http", "/public/logo.png", undefined, "GET", true, "rules[1]", "GET,HEAD prefix:/public"],
    ["http", "/public/logo.png", undefined, "DELETE", false, "default:deny", undefined],
    ["tcp", "/public", undefined, "GET", false, "default:deny", undefined],
  ];
  it.each(cases)(
    "%s %s (client %s, %s) → %s",
    (protocol, path, clientId, method, allowed, reason, route) => {
      const d = policy.evaluate(
        req({ protocol: protocol as AuthzRequest["protocol"], path, clientId, method }),
      );
      expect(d).toMatchObject({ allowed, reason });
      expect(d.route).toBe(route);
    },
  );
});

describe("authz validation", () => {
  const problemsOf = (config: unknown, trustDomain?: string) => {
    try {
      compileAuthzPolicy(config, { path: "inbound.policy", trustDomain });
    } catch (err) {
      expect(err).toBeInstanceOf(AuthzConfigError);
      expect(isMeshError(err, "MESH_AUTHZ_CONFIG_INVALID")).toBe(true);
      expect((err as AuthzConfigError).code).toBe("MESH_AUTHZ_CONFIG_INVALID");
      return (err as AuthzConfigError).problems.map((p) => `${p.path}: ${p.message}`);
    }
    return [];
  };

  it("names the field path of every problem", () => {
    const problems = problemsOf({
      default: "allow-all",
      rules: [
        { allow: { identities: ["/ns/prod/*"] } },
        {
          allow: { networks: ["10.0.0.0/33", { cidr: "10.0.0.0/8", except: ["192.168.0.0/16"] }] },
        },
        { allow: {} },
        { allow: { identities: [WEB] }, routes: [{ pathPrefix: "api", methods: ["GET POST"] }] },
        "nope",
      ],
    });
    expect(problems).toEqual([
      'inbound.policy.default: expected all-unauthenticated, all-authenticated, cluster-authenticated, deny or audit, got "allow-all"',
      'inbound.policy.rules[0].allow.identities[0]: expected a SPIFFE ID, "*" or a spiffe:// pattern (bare paths would match every trust domain), got "/ns/prod/*"',
      'inbound.policy.rules[1].allow.networks[0]: expected a prefix length in 0..32 after "/", got "10.0.0.0/33"',
      'inbound.policy.rules[1].allow.networks[1].except[0]: expected a network inside 10.0.0.0/8, got "192.168.0.0/16"',
      "inbound.policy.rules[2].allow: expected at least one of identities, networks, got {}",
      'inbound.policy.rules[3].routes[0].pathPrefix: expected a path starting with "/", got "api"',
      'inbound.policy.rules[3].routes[0].methods[0]: expected an HTTP method token, got "GET POST"',
      'inbound.policy.rules[4]: expected a rule { allow, routes? }, got "nope"',
    ]);
  });

  it("requires the trust domain for cluster-authenticated", () => {
    expect(problemsOf({ default: "cluster-authenticated" })).toEqual([
      "inbound.policy.default: expected identity.trustDomain to be configured for cluster-authenticated, got nothing",
    ]);
    expect(problemsOf({ default: "cluster-authenticated" }, "example.org")).toEqual([]);
  });

  it("rejects malformed identities and unknown fields", () => {
    expect(
      problemsOf({ rules: [{ allow: { identities: ["spiffe://Bad.Domain/x"] }, rotes: [] }] }),
    ).toEqual([
      expect.stringMatching(
        /^inbound\.policy\.rules\[0\]\.allow\.identities\[0\]: expected a SPIFFE ID, .* got "spiffe:\/\/Bad\.Domain\/x" \(invalid SPIFFE ID/,
      ),
      "inbound.policy.rules[0].rotes: unknown field",
    ]);
  });
});

describe("mesh:authz:decision", () => {
  it("publishes exactly the documented payload", () => {
    const events: AuthzDecisionEvent[] = [];
    const onEvent = (m: unknown) => events.push(m as AuthzDecisionEvent);
    subscribe("mesh:authz:decision", onEvent);
    try {
      const policy = compileAuthzPolicy({
        default: "all-authenticated",
        rules: [{ allow: { identities: [WEB] }, routes: [{ pathPrefix: "/api" }] }],
      });
      policy.authorize(
        req({ clientId: WEB, path: "/api/x", remoteAddress: "10.0.0.7", port: 4143 }),
      );
      policy.authorize(req({ protocol: "tcp", remoteAddress: "10.0.0.8", port: 5432 }));
      policy.evaluate(req()); // evaluate() alone publishes nothing
    } finally {
      unsubscribe("mesh:authz:decision", onEvent);
    }
    expect(events).toEqual([
      {
        allowed: true,
        audit: false,
        clientId: WEB,
        network: "10.0.0.7",
        protocol: "http",
        port: 4143,
        route: "prefix:/api",
        reason: "rules[0]",
      },
      {
        allowed: false,
        audit: false,
        network: "10.0.0.8",
        protocol: "tcp",
        port: 5432,
        reason: "unauthenticated",
      },
    ]);
  });
});
