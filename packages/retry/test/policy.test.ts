import { describe, expect, it } from "vitest";
import {
  Backoff,
  GrpcStatusSet,
  HttpStatusSet,
  parseRetryAfter,
  RetryPolicy,
} from "../src/index.js";

describe("HttpStatusSet (Linkerd syntax)", () => {
  it("parses classes, gateway-error, ranges and codes", () => {
    const s = new HttpStatusSet("5xx");
    expect([s.has(500), s.has(599), s.has(499), s.has(200)]).toEqual([true, true, false, false]);
    const g = new HttpStatusSet("gateway-error");
    expect([501, 502, 503, 504, 505].map((c) => g.has(c))).toEqual([
      false,
      true,
      true,
      true,
      false,
    ]);
    const r = new HttpStatusSet("500-502, 429");
    expect([429, 500, 501, 502, 503].map((c) => r.has(c))).toEqual([true, true, true, true, false]);
    const a = new HttpStatusSet(["503", "4xx"]);
    expect([404, 503, 500].map((c) => a.has(c))).toEqual([true, true, false]);
  });

  it("rejects malformed classes naming the option", () => {
    expect(() => new HttpStatusSet("6xx", "retry.http")).toThrow(
      'retry.http: expected a status class like "5xx", "gateway-error", "500-504" or "503", got "6xx"',
    );
    expect(() => new HttpStatusSet("504-500", "retry.http")).toThrow(RangeError);
    expect(() => new HttpStatusSet("999", "retry.http")).toThrow(
      'retry.http: expected a status code in 100..599, got "999"',
    );
  });
});

describe("GrpcStatusSet", () => {
  it("accepts Linkerd names, upper-case names and numbers", () => {
    const s = new GrpcStatusSet("cancelled,deadline-exceeded,RESOURCE_EXHAUSTED, 14");
    expect([1, 4, 8, 14, 13, 0].map((c) => s.has(c))).toEqual([
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    expect(new GrpcStatusSet([]).empty).toBe(true);
    expect(() => new GrpcStatusSet("nope", "retry.grpc")).toThrow(
      /^retry\.grpc: expected a gRPC status name/,
    );
  });
});

describe("RetryPolicy", () => {
  it("defaults: limit 1, 5xx, five gRPC codes, idempotent methods", () => {
    const p = new RetryPolicy({ budget: false });
    expect(p.limit).toBe(1);
    expect(p.classifyStatus(503)).toBe("http-503");
    expect(p.classifyStatus(404)).toBeUndefined();
    expect(p.classifyGrpc(14)).toBe("grpc-unavailable");
    expect(p.classifyGrpc(13)).toBe("grpc-internal");
    expect(p.classifyGrpc(5)).toBeUndefined();
    expect(["GET", "put", "DELETE", "HEAD", "OPTIONS"].every((m) => p.allowsMethod(m))).toBe(true);
    expect(p.allowsMethod("POST")).toBe(false);
    expect(p.allowsMethod("PATCH")).toBe(false);
    expect(new RetryPolicy({ retryNonIdempotent: true }).allowsMethod("POST")).toBe(true);
  });

  it("classifies connection errors, also when wrapped in a cause", () => {
    const p = new RetryPolicy();
    expect(p.classifyError(Object.assign(new Error("x"), { code: "ECONNRESET" }))).toBe(
      "ECONNRESET",
    );
    expect(
      p.classifyError(
        new TypeError("fetch failed", {
          cause: Object.assign(new Error(), { code: "ECONNREFUSED" }),
        }),
      ),
    ).toBe("ECONNREFUSED");
    expect(
      p.classifyError(Object.assign(new Error("x"), { code: "UND_ERR_ABORTED" })),
    ).toBeUndefined();
  });

  it("Retry-After within retryAfterMax is a minimum backoff; beyond it, no retry", () => {
    const p = new RetryPolicy({ retryAfterMax: 2000, backoff: { random: () => 0.5 } });
    expect(p.delay(1, 1000)).toBe(1000);
    expect(p.delay(1, 3000)).toBeUndefined();
    expect(p.delay(1, undefined)).toBe(12);
    // A shorter pushback than the backoff does not shorten the wait.
    const slow = new RetryPolicy({
      retryAfterMax: 2000,
      backoff: { base: 400, max: 400, random: () => 0.5 },
    });
    expect(slow.delay(1, 0)).toBe(200);
    expect(slow.delay(1, 1000)).toBe(1000);
    expect(new RetryPolicy({ retryAfterMax: false }).delay(1, 3000)).toBeLessThan(25);
  });

  it("validates every option with its path", () => {
    expect(() => new RetryPolicy({ limit: -1 })).toThrow(
      "retry.limit: expected an integer in 0..100, got -1",
    );
    expect(() => new RetryPolicy({ limit: 1.5 })).toThrow(RangeError);
    expect(() => new RetryPolicy({ methods: "GET" as never })).toThrow(
      'retry.methods: expected an array of non-empty strings, got "GET"',
    );
    expect(() => new RetryPolicy({ perTryTimeout: 0 })).toThrow(
      "retry.perTryTimeout: expected a number in 1..2147483647, got 0",
    );
    expect(() => new RetryPolicy({ backoff: { base: 100, max: 10 } })).toThrow(
      "retry.backoff.max: expected a number >= retry.backoff.base (100), got 10",
    );
    expect(() => new RetryPolicy({ budget: { ttl: 0 } })).toThrow(
      "budget.ttl: expected a number in 1000..60000, got 0",
    );
    expect(() => new RetryPolicy("x" as never)).toThrow(
      'retry: expected an options object, got "x"',
    );
  });
});

describe("Backoff", () => {
  it("is exponential with full jitter, 25 ms → 250 ms by default", () => {
    const top = new Backoff({ random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 6].map((n) => top.delay(n))).toEqual([24, 49, 99, 199, 249, 249]);
    const bottom = new Backoff({ random: () => 0 });
    expect(bottom.delay(3)).toBe(0);
  });

  it("parses Retry-After seconds and HTTP-dates", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter("-1")).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
