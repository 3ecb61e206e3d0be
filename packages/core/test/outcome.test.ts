import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  endpointHealth,
  GrpcStatus,
  grpcStatusOf,
  isMeshError,
  MeshError,
  OutcomeRule,
  parseGrpcStatus,
  readGrpcStatus,
  responseSuccess,
  retryable,
} from "../src/index.js";

describe("gRPC status parsing", () => {
  it("reads header values as sent, rejecting anything but a short decimal", () => {
    expect(readGrpcStatus("14")).toBe(14);
    expect(readGrpcStatus(["0", "2"])).toBe(0);
    expect(readGrpcStatus(7)).toBe(7);
    for (const bad of [undefined, "", "-1", "1x", " 1", "1000", 1.5, null]) {
      expect(readGrpcStatus(bad)).toBeUndefined();
    }
    expect(grpcStatusOf({ "grpc-status": "13" })).toBe(13);
    expect(grpcStatusOf(undefined)).toBeUndefined();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999 }), (n) => {
        expect(readGrpcStatus(String(n))).toBe(n);
      }),
    );
  });

  it("parses names in either spelling, and numbers", () => {
    expect(parseGrpcStatus("unavailable", "p")).toBe(GrpcStatus.UNAVAILABLE);
    expect(parseGrpcStatus("DEADLINE_EXCEEDED", "p")).toBe(4);
    expect(parseGrpcStatus("canceled", "p")).toBe(1);
    expect(parseGrpcStatus(" ", "p")).toBeUndefined();
    expect(parseGrpcStatus("16", "p")).toBe(16);
    expect(() => parseGrpcStatus(17, "p")).toThrow(
      new RangeError("p: expected a gRPC status code in 0..16, got 17"),
    );
    expect(() => parseGrpcStatus("nope", "p")).toThrow(RangeError);
    expect(() => parseGrpcStatus({}, "p")).toThrow(TypeError);
  });
});

describe("outcome rules", () => {
  it("lets the gRPC status decide when present, the HTTP status otherwise", () => {
    expect(responseSuccess.response(200, 0)).toBe("success");
    expect(responseSuccess.response(500, 0)).toBe("success");
    expect(responseSuccess.response(200, 5)).toBe("failure");
    expect(responseSuccess.response(200, undefined)).toBe("success");
    expect(responseSuccess.response(404, undefined)).toBe("success");
    expect(responseSuccess.response(503, undefined)).toBe("failure");
    expect(responseSuccess.response(0, undefined)).toBe("failure");

    expect(endpointHealth.response(200, GrpcStatus.NOT_FOUND)).toBe("success");
    expect(endpointHealth.response(200, GrpcStatus.UNAVAILABLE)).toBe("failure");
    expect(endpointHealth.response(502, undefined)).toBe("failure");
    expect(retryable.response(200, GrpcStatus.RESOURCE_EXHAUSTED)).toBe("failure");
    expect(retryable.response(200, GrpcStatus.PERMISSION_DENIED)).toBe("success");
    expect(retryable.response(503, undefined)).toBe("failure");
  });

  it("classifies errors per rule", () => {
    const reset = Object.assign(new Error("reset"), { code: "ECONNRESET" });
    const wrapped = Object.assign(new Error("fetch failed"), { code: "UND_ERR_X", cause: reset });
    const abort = Object.assign(new Error("aborted"), { name: "AbortError" });
    const closed = Object.assign(new Error("closed"), { code: "MESH_BALANCER_CLOSED" });
    expect(endpointHealth.error(reset)).toBe("failure");
    expect(endpointHealth.error(abort)).toBe("neutral");
    expect(endpointHealth.error(closed)).toBe("neutral");
    expect(endpointHealth.error("weird")).toBe("failure");
    expect(retryable.error(reset)).toBe("failure");
    expect(retryable.failingErrorCode(wrapped)).toBe("ECONNRESET");
    expect(retryable.error(abort)).toBe("neutral");
    expect(responseSuccess.error(abort)).toBe("failure");
  });

  it("never throws and reads every status in a table", () => {
    const rule = new OutcomeRule({ name: "t", http: [503], grpc: [14] });
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 2000 }),
        fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
        (s, g) => {
          const got = rule.response(s, g);
          if (g !== undefined) expect(got).toBe(g === 14 || g >= 1000 ? "failure" : "success");
          else expect(got).toBe(s === 503 || s < 0 || s >= 1000 ? "failure" : "success");
        },
      ),
    );
    expect(rule.grpcNeverFails).toBe(false);
    expect(new OutcomeRule({ name: "n", http: [], grpc: [] }).grpcNeverFails).toBe(true);
  });
});

describe("MeshError", () => {
  it("carries a stable code and is recognised by shape", () => {
    const e = new MeshError("MESH_TEST_X", "x");
    expect(isMeshError(e)).toBe(true);
    expect(isMeshError(e, "MESH_TEST_X")).toBe(true);
    expect(isMeshError(e, "MESH_TEST_Y")).toBe(false);
    expect(isMeshError(Object.assign(new Error("y"), { code: "MESH_OTHER" }), "MESH_OTHER")).toBe(
      true,
    );
    expect(isMeshError(Object.assign(new Error("y"), { code: "ECONNRESET" }))).toBe(false);
    expect(isMeshError({ code: "MESH_X" })).toBe(false);
  });
});
