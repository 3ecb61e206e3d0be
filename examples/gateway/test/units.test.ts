import { NoEndpointsReadyError } from "@mesh/balancer";
import { CircuitOpenError, PerTryTimeoutError, RequestTimeoutError } from "@mesh/retry";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { errorResponse } from "../src/errors.ts";

describe("errorResponse", () => {
  it("maps the libraries' errors to 503/504 and the rest to 502, keeping the code", () => {
    expect(errorResponse(new NoEndpointsReadyError("upstreams", 3000))).toMatchObject({
      status: 503,
      error: "service_unavailable",
      code: "MESH_BALANCER_NO_ENDPOINTS_READY",
    });
    expect(errorResponse(new CircuitOpenError("http://upstreams")).status).toBe(503);
    expect(errorResponse(new RequestTimeoutError(300))).toMatchObject({
      status: 504,
      code: "MESH_RETRY_REQUEST_TIMEOUT",
    });
    expect(errorResponse(new PerTryTimeoutError(150)).status).toBe(504);
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    expect(errorResponse(refused)).toMatchObject({ status: 502, code: "ECONNREFUSED" });
    expect(errorResponse(new TypeError("fetch failed", { cause: refused })).code).toBe(
      "ECONNREFUSED",
    );
    expect(errorResponse("weird")).toMatchObject({ status: 502, code: undefined });
  });
});

describe("loadConfig", () => {
  it("has defaults and reads every variable", () => {
    expect(loadConfig({})).toEqual({
      port: 8080,
      host: "127.0.0.1",
      upstreams: undefined,
      requestTimeoutMs: 10_000,
      perTryTimeoutMs: 2_000,
      shutdownGraceMs: 10_000,
    });
    expect(
      loadConfig({ PORT: "0", UPSTREAMS: "127.0.0.1:9001, [::1]:9002,web.internal:80" }),
    ).toMatchObject({ port: 0, upstreams: ["127.0.0.1:9001", "[::1]:9002", "web.internal:80"] });
  });

  it("names the variable and the bad value", () => {
    expect(() => loadConfig({ PORT: "http" })).toThrow(
      new TypeError('PORT: expected an integer, got "http"'),
    );
    expect(() => loadConfig({ PORT: "70000" })).toThrow(
      new RangeError("PORT: expected an integer in 0..65535, got 70000"),
    );
    expect(() => loadConfig({ UPSTREAMS: "127.0.0.1:9001,http://x" })).toThrow(
      'UPSTREAMS[1]: expected host:port, got "http://x"',
    );
  });
});
