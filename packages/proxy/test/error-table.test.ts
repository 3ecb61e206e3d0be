import { balancerErrorCodes, NoEndpointsReadyError } from "@mesh/balancer";
import { isMeshError } from "@mesh/core";
import { limitErrorCodes, RateLimitedError } from "@mesh/limit";
import { metricsErrorCodes } from "@mesh/metrics";
import { CircuitOpenError, PerTryTimeoutError, retryErrorCodes } from "@mesh/retry";
import { IdentityError, identityErrorCodes } from "@mesh/tls-identity";
import { describe, expect, it } from "vitest";
import { FOREIGN_ERROR_ANSWERS, MESH_ERROR_ANSWERS } from "../src/http/error-table.js";
import { classifyError, ProxyError, proxyErrorCodes } from "../src/http/errors.js";
import { statErrorCodes } from "../src/stat/errors.js";
import { meshTlsErrorCodes } from "../src/transport/mtls/errors.js";
import { transportHeaderErrorCodes } from "../src/transport/transport-header/header.js";

/** Every code each library exports, and the proxy's own (apart from ProxyError's). */
const EVERY_CODE: readonly string[] = [
  ...retryErrorCodes,
  ...balancerErrorCodes,
  ...identityErrorCodes,
  ...metricsErrorCodes,
  ...limitErrorCodes,
  ...meshTlsErrorCodes,
  ...transportHeaderErrorCodes,
  ...statErrorCodes,
  // ConfigError, AuthzConfigError and OrigProtoError: one code each
  "MESH_PROXY_CONFIG_INVALID",
  "MESH_AUTHZ_CONFIG_INVALID",
  "MESH_PROXY_ORIG_PROTO_INVALID",
];

describe("the error → status table", () => {
  it("answers every code a library or the proxy exports, and nothing else", () => {
    const table = Object.keys(MESH_ERROR_ANSWERS).sort();
    expect(table).toEqual([...new Set(EVERY_CODE)].sort());
    for (const answer of [
      ...Object.values(MESH_ERROR_ANSWERS),
      ...FOREIGN_ERROR_ANSWERS.values(),
    ]) {
      expect(proxyErrorCodes).toContain(answer.code);
    }
  });

  it("maps library errors by their exact code", () => {
    const cases: [Error, number, string][] = [
      [new CircuitOpenError("api"), 503, "circuit breaker open"],
      [new PerTryTimeoutError(100), 504, "per-try timeout"],
      [new NoEndpointsReadyError("api", 3000), 503, "no endpoint ready"],
      [new IdentityError("MESH_IDENTITY_ISSUER_UNAVAILABLE", "down"), 502, "identity not ready"],
      [new IdentityError("MESH_IDENTITY_SOURCE_CLOSED", "closed"), 502, "identity not ready"],
      [new RateLimitedError("MESH_LIMIT_RATE_LIMITED", 1500, "total"), 429, "rate limited"],
    ];
    for (const [err, status, reason] of cases) {
      const answer = classifyError(err);
      expect(answer).toBeInstanceOf(ProxyError);
      expect([answer.status, answer.reason]).toEqual([status, reason]);
      expect(answer.cause).toBe(err);
      expect(isMeshError(answer, answer.code)).toBe(true);
    }
  });

  it("carries a rate limit's retry-after", () => {
    const answer = classifyError(new RateLimitedError("MESH_LIMIT_QUEUE_FULL", 1500, "total"));
    expect([answer.status, answer.reason, answer.retryAfterMs]).toEqual([
      429,
      "rate limited (queue full)",
      1500,
    ]);
  });

  it("never guesses from the spelling of an unknown code", () => {
    for (const code of [
      "MESH_RETRY_BUDGET_EXHAUSTED",
      "MESH_X_UNAVAILABLE",
      "MESH_X_CLOSED",
      "X_TIMEOUT",
    ]) {
      expect(classifyError(Object.assign(new Error(code), { code })).code).toBe(
        "MESH_PROXY_INTERNAL",
      );
    }
    const wrapped = Object.assign(new Error("fetch failed"), {
      code: "UND_ERR_X",
      cause: Object.assign(new Error("refused"), { code: "ECONNREFUSED" }),
    });
    expect(classifyError(wrapped).code).toBe("MESH_PROXY_UPSTREAM_CONNECT");
    expect(
      classifyError(Object.assign(new Error("bad"), { code: "HPE_INVALID_CONSTANT" })).status,
    ).toBe(502);
  });
});
