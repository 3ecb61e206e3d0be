import { describe, expect, it } from "vitest";
import {
  Balancer,
  EndpointSet,
  failureAccrualConfig,
  parseAddress,
  staticResolver,
} from "../src/index.js";

describe("bad input gets errors naming the field", () => {
  it("addresses", () => {
    expect(parseAddress("10.0.0.1:8080").origin).toBe("http://10.0.0.1:8080");
    expect(parseAddress("[::1]:8080").origin).toBe("http://[::1]:8080");
    expect(parseAddress("https://api.internal").origin).toBe("https://api.internal:443");
    for (const bad of [
      "10.0.0.1",
      "10.0.0.1:0",
      "10.0.0.1:70000",
      "http://a:1/path",
      "ftp://a:1",
      "a b:1",
      "",
      "u:p@h:1",
    ]) {
      expect(() => parseAddress(bad, "endpoints[3].address"), bad).toThrow(
        /^endpoints\[3\]\.address: expected an address like/,
      );
    }
    expect(() => parseAddress(42)).toThrow(TypeError);
  });

  it("endpoint fields", () => {
    expect(() => staticResolver([{ address: "10.0.0.1:80", weight: 0 }])).toThrow(
      "endpoints[0].weight: expected a number in 0 (exclusive)..1000000, got 0",
    );
    expect(() => staticResolver(["10.0.0.1:80", { address: "10.0.0.2:80", zone: "" }])).toThrow(
      'endpoints[1].zone: expected a non-empty string, got ""',
    );
    expect(() => staticResolver([{ address: "10.0.0.1:80", labels: { a: 1 as never } }])).toThrow(
      "endpoints[0].labels.a: expected a string, got 1",
    );
    expect(() => staticResolver("10.0.0.1:80" as never)).toThrow(
      'endpoints: expected an array of endpoints, got "10.0.0.1:80"',
    );
  });

  it("durations, counts and strategies", () => {
    expect(() => new Balancer({ failFastMs: -1 })).toThrow(
      "failFastMs: expected a duration in ms in 0..2147483647, got -1",
    );
    expect(() => new Balancer({ failFastMs: "3s" as never })).toThrow(TypeError);
    expect(() => new Balancer({ strategy: "random" as never })).toThrow(
      'strategy: expected "p2c" | "round-robin" | "least-pending", got "random"',
    );
    expect(() => new Balancer({ endpoints: 5 as never })).toThrow(
      "endpoints: expected an array of endpoints or a Resolver, got 5",
    );
    expect(() => new EndpointSet({ ewma: { decayMs: 0 } })).toThrow(
      "ewma.decayMs: expected a duration in ms in 1..2147483647, got 0",
    );
    expect(() => failureAccrualConfig({ consecutiveFailures: 0 })).toThrow(
      "accrual.consecutiveFailures: expected an integer in 1..1000000, got 0",
    );
    expect(() => failureAccrualConfig({ jitter: 2 })).toThrow(
      "accrual.jitter: expected a number in 0..1, got 2",
    );
    expect(() => failureAccrualConfig({ minPenaltyMs: 5000, maxPenaltyMs: 1000 })).toThrow(
      "accrual.maxPenaltyMs: expected a duration >= minPenaltyMs (5000), got 1000",
    );
  });
});

describe("Balancer rejects unknown options", () => {
  it("names the option and points undici Pool options to `pool`", () => {
    expect(() => new Balancer({ connections: 4 } as never)).toThrow(
      'Balancer: unknown option "connections" (did you mean "pool.connections"?)',
    );
    expect(() => new Balancer({ stratgy: "p2c" } as never)).toThrow(/unknown option "stratgy"/);
  });
});
