import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  matchAny,
  matchExact,
  matchOneOf,
  matchPath,
  matchTrustDomain,
  parseSpiffeId,
  parseTrustDomain,
  parseWorkloadId,
  SpiffeId,
  SpiffeIdError,
  type SpiffeIdRule,
  workloadId,
} from "../src/index.js";

const valid: Array<[string, string, string]> = [
  ["spiffe://example.org", "example.org", ""],
  ["spiffe://example.org/workload", "example.org", "/workload"],
  ["spiffe://example.org/ns/prod/sa/web", "example.org", "/ns/prod/sa/web"],
  ["spiffe://a", "a", ""],
  ["spiffe://td-with_under.score-1/x", "td-with_under.score-1", "/x"],
  ["spiffe://example.org/Mixed.Case-Path_9", "example.org", "/Mixed.Case-Path_9"],
  ["spiffe://example.org/...", "example.org", "/..."], // three dots is a name, not a dot segment
  ["spiffe://example.org/.hidden/..x", "example.org", "/.hidden/..x"],
  ["spiffe://1.2.3.4/ip-like-trust-domain", "1.2.3.4", "/ip-like-trust-domain"],
  [`spiffe://${"t".repeat(255)}/x`, "t".repeat(255), "/x"],
];

const invalid: Array<[string, SpiffeIdRule]> = [
  ["", "empty"],
  ["example.org/x", "scheme"],
  ["http://example.org/x", "scheme"],
  ["SPIFFE://example.org/x", "scheme"],
  ["spiffe:/example.org/x", "scheme"],
  ["spiffe://", "trust-domain-missing"],
  ["spiffe:///path", "trust-domain-missing"],
  ["spiffe://Example.org/x", "trust-domain-chars"],
  ["spiffe://exa mple.org", "trust-domain-chars"],
  ["spiffe://exämple.org", "trust-domain-chars"],
  ["spiffe://%65xample.org", "trust-domain-chars"],
  ["spiffe://user@example.org/x", "userinfo"],
  ["spiffe://user:pw@example.org/x", "port"], // ':' comes first
  ["spiffe://example.org:8080/x", "port"],
  ["spiffe://example.org?x=1", "query"],
  ["spiffe://example.org/x?y=1", "query"],
  ["spiffe://example.org#frag", "fragment"],
  ["spiffe://example.org/x#frag", "fragment"],
  ["spiffe://example.org/", "path-trailing-slash"],
  ["spiffe://example.org/x/", "path-trailing-slash"],
  ["spiffe://example.org//x", "path-empty-segment"],
  ["spiffe://example.org/x//y", "path-empty-segment"],
  ["spiffe://example.org/.", "path-dot-segment"],
  ["spiffe://example.org/..", "path-dot-segment"],
  ["spiffe://example.org/x/./y", "path-dot-segment"],
  ["spiffe://example.org/x/../y", "path-dot-segment"],
  ["spiffe://example.org/x%20y", "path-chars"],
  ["spiffe://example.org/x y", "path-chars"],
  ["spiffe://example.org/ü", "path-chars"],
  ["spiffe://example.org/a:b", "path-chars"],
  [`spiffe://${"t".repeat(256)}/x`, "trust-domain-too-long"],
  [`spiffe://example.org/${"p".repeat(2048)}`, "too-long"],
];

describe("parseSpiffeId", () => {
  test.each(valid)("accepts %s", (input, td, path) => {
    const id = parseSpiffeId(input);
    expect(id.trustDomain).toBe(td);
    expect(id.path).toBe(path);
    expect(id.toString()).toBe(input);
    expect(JSON.stringify({ id })).toBe(JSON.stringify({ id: input }));
  });

  test.each(invalid)("rejects %j (rule %s)", (input, rule) => {
    let err: unknown;
    try {
      parseSpiffeId(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpiffeIdError);
    const e = err as SpiffeIdError;
    expect(e.rule).toBe(rule);
    expect(e.code).toBe("MESH_IDENTITY_INVALID_SPIFFE_ID");
    expect(e.message).toMatch(/^invalid SPIFFE ID ".*": /);
  });

  test("non-strings are rejected with rule 'type'", () => {
    expect(() => parseSpiffeId(42 as unknown as string)).toThrow(
      expect.objectContaining({ rule: "type" }),
    );
  });

  test("any ID built from valid parts round-trips (property)", () => {
    const tdChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789.-_".split(""));
    const segChar = fc.constantFrom(..."abcXYZ019.-_".split(""));
    const segment = fc
      .string({ unit: segChar, minLength: 1, maxLength: 12 })
      .filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(
        fc.string({ unit: tdChar, minLength: 1, maxLength: 40 }),
        fc.array(segment, { maxLength: 6 }),
        (td, segs) => {
          const id = SpiffeId.fromSegments(td, ...segs);
          expect(parseSpiffeId(id.toString()).equals(id)).toBe(true);
          expect(id.segments).toEqual(segs);
        },
      ),
    );
  });
});

describe("workload IDs", () => {
  test("build and parse /ns/<ns>/sa/<sa>", () => {
    const id = workloadId("prod.example", "payments", "api");
    expect(id.toString()).toBe("spiffe://prod.example/ns/payments/sa/api");
    expect(parseWorkloadId(id)).toEqual({
      trustDomain: "prod.example",
      namespace: "payments",
      serviceAccount: "api",
    });
    expect(parseWorkloadId(parseSpiffeId("spiffe://prod.example/other"))).toBeUndefined();
  });
  test("bad parts are named", () => {
    expect(() => workloadId("prod.example", "a/b", "api")).toThrow(SpiffeIdError);
    expect(() => workloadId("Prod", "a", "api")).toThrow(
      expect.objectContaining({ rule: "trust-domain-chars" }),
    );
  });
  test("parseTrustDomain takes a name or spiffe://name", () => {
    expect(parseTrustDomain("spiffe://example.org")).toBe("example.org");
    expect(() => parseTrustDomain("spiffe://example.org/x")).toThrow(SpiffeIdError);
  });
});

describe("matchers", () => {
  const web = parseSpiffeId("spiffe://prod.example/ns/prod/sa/web");
  const dbOther = parseSpiffeId("spiffe://other.example/ns/prod/sa/db");
  test("exact, one-of, trust domain, any", () => {
    expect(matchExact("spiffe://prod.example/ns/prod/sa/web")(web)).toBe(true);
    expect(matchExact("spiffe://prod.example/ns/prod/sa/api")(web)).toBe(false);
    expect(matchOneOf(["spiffe://x/y", web])(web)).toBe(true);
    expect(matchTrustDomain("prod.example")(web)).toBe(true);
    expect(matchTrustDomain("spiffe://prod.example")(dbOther)).toBe(false);
    expect(matchAny(matchTrustDomain("nope"), matchExact(dbOther))(dbOther)).toBe(true);
  });
  test("path patterns", () => {
    expect(matchPath("/ns/prod/*")(web)).toBe(true);
    expect(matchPath("/ns/prod/*")(dbOther)).toBe(true); // bare path: any trust domain
    expect(matchPath("spiffe://prod.example/ns/prod/*")(dbOther)).toBe(false);
    expect(matchPath("/ns/*/sa/web")(web)).toBe(true);
    expect(matchPath("/ns/*/sa/web")(dbOther)).toBe(false);
    expect(matchPath("/ns/staging/*")(web)).toBe(false);
    expect(matchPath("/ns/prod/sa/web/*")(web)).toBe(false); // trailing * needs at least one segment
    expect(() => matchPath("/ns/pr*d")).toThrow(TypeError);
    expect(() => matchPath("ns/prod")).toThrow(/pattern: expected a path/);
  });
});
