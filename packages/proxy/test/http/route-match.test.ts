import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { pathOf, RouteMatch, routeMatchName } from "../../src/http/route-match.js";
import { compileAuthzPolicy } from "../../src/inbound/authz/policy.js";
import { RouteTable } from "../../src/outbound/router.js";

// Routing and authorization read a route the same way: both use RouteMatch.
describe("RouteMatch", () => {
  test("prefixes match whole segments, trailing slashes ignored, the query never matters", () => {
    const m = new RouteMatch({ pathPrefix: "/api/" });
    expect(m.label).toBe("prefix:/api");
    for (const p of ["/api", "/api/", "/api/books", "/api?x=1"])
      expect(m.matches("GET", pathOf(p))).toBe(true);
    for (const p of ["/apix", "/ap", "/", "/v1/api"])
      expect(m.matches("GET", pathOf(p))).toBe(false);
    expect(new RouteMatch({ pathPrefix: "/" }).matches("GET", "/anything")).toBe(true);
  });

  test("exact paths, methods in any case, headers exact or by whole-value regex", () => {
    const m = new RouteMatch({
      path: "/books",
      methods: ["get", "HEAD"],
      headers: { "X-Tenant": "a", "x-version": { regex: "v[12]" } },
    });
    expect(m.label).toBe("GET,HEAD exact:/books header:x-tenant=a header:x-version~v[12]");
    const h = { "x-tenant": "a", "x-version": "v2" };
    expect(m.matches("GET", "/books", h)).toBe(true);
    expect(m.matches("head", "/books", h)).toBe(true);
    expect(m.matches("POST", "/books", h)).toBe(false);
    expect(m.matches("GET", "/books/1", h)).toBe(false);
    expect(m.matches("GET", "/books", { ...h, "x-version": "v22" })).toBe(false);
    expect(m.matches("GET", "/books", { "x-version": "v1" })).toBe(false);
    expect(m.matches(undefined, "/books", h)).toBe(false);
  });

  test("the router and the authorization policy agree on the same route", () => {
    const config = validateConfig({
      outbound: {
        services: [
          {
            name: "api",
            discovery: { static: ["127.0.0.1:1"] },
            routes: [{ name: "books", match: { pathPrefix: "/books/", methods: ["GET"] } }],
          },
        ],
      },
    });
    if (!config.ok) throw new Error(JSON.stringify(config.problems));
    const table = new RouteTable(config.config.outbound!);
    const policy = compileAuthzPolicy({
      default: "deny",
      rules: [
        {
          allow: { networks: ["0.0.0.0/0"] },
          routes: [{ pathPrefix: "/books/", methods: ["GET"] }],
        },
      ],
    });
    for (const [method, path] of [
      ["GET", "/books"],
      ["GET", "/books/1?q=x"],
      ["GET", "/booksx"],
      ["POST", "/books/1"],
      ["GET", "/"],
    ] as const) {
      const routed = table.route("api", method, path, {})?.route.name === "books";
      const allowed = policy.evaluate({
        remoteAddress: "10.0.0.1",
        port: 1,
        protocol: "http",
        method,
        path,
      }).allowed;
      expect({ method, path, allowed }).toEqual({ method, path, allowed: routed });
    }
  });
});

// One name for a route, derived from its match: the outbound `route` label of an unnamed
// route and the `route` of authorization decisions.
describe("routeMatchName", () => {
  test("a prefix is named without trailing slashes; exact paths as written", () => {
    expect(routeMatchName({ pathPrefix: "/api/" })).toBe("prefix:/api");
    expect(routeMatchName({ pathPrefix: "/api//" })).toBe("prefix:/api");
    expect(routeMatchName({ pathPrefix: "/" })).toBe("prefix:/");
    expect(routeMatchName({ pathPrefix: "//" })).toBe("prefix:/");
    expect(routeMatchName({ path: "/api/" })).toBe("exact:/api/");
    expect(routeMatchName({ methods: ["get"], pathPrefix: "/api/" })).toBe("GET prefix:/api");
    expect(routeMatchName({})).toBe("any");
  });

  test("two prefixes get one name exactly when they match the same requests", () => {
    const segment = fc.constantFrom("a", "b", "ab");
    const prefix = fc
      .tuple(fc.array(segment, { maxLength: 3 }), fc.nat({ max: 2 }))
      .map(([segs, slashes]) => `/${segs.join("/")}${"/".repeat(slashes)}`);
    const path = fc.array(segment, { maxLength: 4 }).map((segs) => `/${segs.join("/")}`);
    fc.assert(
      fc.property(prefix, prefix, fc.array(path, { maxLength: 20 }), (p, q, paths) => {
        const mp = new RouteMatch({ pathPrefix: p });
        const mq = new RouteMatch({ pathPrefix: q });
        if (routeMatchName({ pathPrefix: p }) === routeMatchName({ pathPrefix: q })) {
          for (const x of [p, q, ...paths]) expect(mp.matches("GET", x)).toBe(mq.matches("GET", x));
        } else {
          // Different names: one of the two prefixes themselves tells them apart.
          const differs = [p, q].some((x) => mp.matches("GET", x) !== mq.matches("GET", x));
          expect(differs).toBe(true);
        }
      }),
    );
  });

  test("a routed request's route label is the name authorization gives the same route", () => {
    const match = { pathPrefix: "/books/", methods: ["GET", "head"] };
    const config = validateConfig({
      outbound: {
        services: [{ name: "api", discovery: { static: ["127.0.0.1:1"] }, routes: [{ match }] }],
      },
    });
    if (!config.ok) throw new Error(JSON.stringify(config.problems));
    const routed = new RouteTable(config.config.outbound!).route("api", "GET", "/books/1", {});
    const decision = compileAuthzPolicy({
      default: "deny",
      rules: [{ allow: { networks: ["0.0.0.0/0"] }, routes: [match] }],
    }).evaluate({
      remoteAddress: "10.0.0.1",
      port: 1,
      protocol: "http",
      method: "GET",
      path: "/books/1",
    });
    expect(routed?.route.name).toBe("GET,HEAD prefix:/books");
    expect(decision.route).toBe("GET,HEAD prefix:/books");
  });
});
