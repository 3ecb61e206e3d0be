import type { BalancerErrorCode } from "@mesh/balancer";
import type { LimitErrorCode } from "@mesh/limit";
import type { MetricsErrorCode } from "@mesh/metrics";
import type { RetryErrorCode } from "@mesh/retry";
import type { IdentityErrorCode } from "@mesh/tls-identity";
import type { ConfigError } from "../config/errors.js";
import type { AuthzConfigError } from "../inbound/authz/policy.js";
import type { StatErrorCode } from "../stat/errors.js";
import type { MeshTlsErrorCode } from "../transport/mtls/errors.js";
import type { OrigProtoError } from "../transport/orig-proto.js";
import type { TransportHeaderErrorCode } from "../transport/transport-header/header.js";
import type { ProxyErrorCode } from "./errors.js";

/** What the client gets for an error: a {@link ProxyErrorCode}, and a more precise reason. */
export interface ErrorAnswer {
  readonly code: ProxyErrorCode;
  readonly reason?: string;
}

/** Every `MESH_*` code a library or the proxy itself defines, apart from ProxyError's own. */
export type MeshErrorCode =
  | RetryErrorCode
  | BalancerErrorCode
  | IdentityErrorCode
  | MetricsErrorCode
  | LimitErrorCode
  | MeshTlsErrorCode
  | TransportHeaderErrorCode
  | StatErrorCode
  | ConfigError["code"]
  | AuthzConfigError["code"]
  | OrigProtoError["code"];

const INTERNAL: ErrorAnswer = { code: "MESH_PROXY_INTERNAL" };
const IDENTITY_NOT_READY: ErrorAnswer = { code: "MESH_PROXY_TLS", reason: "identity not ready" };

/**
 * The exact answer to every mesh error code: `Record` over the union of every package's code
 * list, so a code added to a library without an answer here fails to compile (and the
 * error-table test fails at run time). Codes that cannot reach the forwarding path (a bad
 * certificate file, a metrics registration clash) answer 502 "proxy error", like any bug.
 */
export const MESH_ERROR_ANSWERS: Readonly<Record<MeshErrorCode, ErrorAnswer>> = {
  // @mesh/retry
  MESH_RETRY_CIRCUIT_OPEN: { code: "MESH_PROXY_CIRCUIT_OPEN" },
  MESH_RETRY_REQUEST_TIMEOUT: { code: "MESH_PROXY_TIMEOUT", reason: "request timeout" },
  MESH_RETRY_PER_TRY_TIMEOUT: { code: "MESH_PROXY_TIMEOUT", reason: "per-try timeout" },
  MESH_RETRY_IDLE_TIMEOUT: { code: "MESH_PROXY_TIMEOUT", reason: "response idle timeout" },
  // @mesh/balancer
  MESH_BALANCER_NO_ENDPOINTS_READY: { code: "MESH_PROXY_NO_ENDPOINTS" },
  MESH_BALANCER_ENDPOINT_OVERLOADED: { code: "MESH_PROXY_ENDPOINT_OVERLOADED" },
  // A backend removed by a reload or shutdown while the request waited: nothing to send to.
  MESH_BALANCER_CLOSED: { code: "MESH_PROXY_NO_ENDPOINTS" },
  MESH_BALANCER_RESOLVER: { code: "MESH_PROXY_NO_ENDPOINTS" },
  // Kubernetes discovery failed (reported, never thrown at a request): nothing to send to.
  MESH_BALANCER_KUBE_API: { code: "MESH_PROXY_NO_ENDPOINTS" },
  // @mesh/tls-identity: our own identity is not available for mTLS to the peer …
  MESH_IDENTITY_NOT_READY: IDENTITY_NOT_READY,
  MESH_IDENTITY_ISSUER_UNAVAILABLE: IDENTITY_NOT_READY,
  MESH_IDENTITY_ISSUER_REJECTED: IDENTITY_NOT_READY,
  MESH_IDENTITY_UNAUTHENTICATED: IDENTITY_NOT_READY,
  // The issuer's authenticator (TokenReview): issuer-side only, never on the forwarding path.
  MESH_IDENTITY_AUTHENTICATOR_UNAVAILABLE: IDENTITY_NOT_READY,
  MESH_IDENTITY_AUTHENTICATOR_SETUP: INTERNAL,
  MESH_IDENTITY_SOURCE_CLOSED: IDENTITY_NOT_READY,
  MESH_IDENTITY_CA_EXPIRED: IDENTITY_NOT_READY,
  // The SPIRE agent is unreachable or sent an unusable response: no SVID to use.
  MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE: IDENTITY_NOT_READY,
  MESH_IDENTITY_WORKLOAD_API_INVALID: IDENTITY_NOT_READY,
  // … or the peer's is not the one discovery named.
  MESH_IDENTITY_PEER_NO_ID: { code: "MESH_PROXY_IDENTITY_MISMATCH" },
  MESH_IDENTITY_PEER_REJECTED: { code: "MESH_PROXY_IDENTITY_MISMATCH" },
  MESH_IDENTITY_PEER_UNTRUSTED: { code: "MESH_PROXY_TLS", reason: "untrusted server certificate" },
  MESH_IDENTITY_INVALID_PEM: INTERNAL,
  MESH_IDENTITY_INVALID_CERTIFICATE: INTERNAL,
  MESH_IDENTITY_CSR_MALFORMED: INTERNAL,
  MESH_IDENTITY_CSR_SIGNATURE: INTERNAL,
  MESH_IDENTITY_KEY_TYPE_NOT_ALLOWED: INTERNAL,
  MESH_IDENTITY_ID_MISMATCH: INTERNAL,
  MESH_IDENTITY_EXTRA_SAN: INTERNAL,
  MESH_IDENTITY_INVALID_SPIFFE_ID: INTERNAL,
  // @mesh/limit (outbound per-service rate limit; the error carries retryAfterMs)
  MESH_LIMIT_RATE_LIMITED: { code: "MESH_PROXY_RATE_LIMITED" },
  MESH_LIMIT_QUEUE_FULL: { code: "MESH_PROXY_RATE_LIMITED", reason: "rate limited (queue full)" },
  // @mesh/metrics
  MESH_METRICS_DUPLICATE_METRIC: INTERNAL,
  MESH_METRICS_LABEL_MISMATCH: INTERNAL,
  MESH_METRICS_INVALID_NAME: INTERNAL,
  // the proxy's mTLS (MeshTlsError keeps its own, more precise reason)
  MESH_PROXY_IDENTITY_MISMATCH: { code: "MESH_PROXY_IDENTITY_MISMATCH" },
  MESH_PROXY_TLS_UNTRUSTED: { code: "MESH_PROXY_TLS" },
  MESH_PROXY_TLS_HANDSHAKE: { code: "MESH_PROXY_TLS" },
  MESH_PROXY_IDENTITY_NOT_READY: IDENTITY_NOT_READY,
  MESH_PROXY_TLS_REFUSED: { code: "MESH_PROXY_IDENTITY_REQUIRED" },
  MESH_PROXY_IDENTITY_SETUP: INTERNAL,
  // the proxy's other errors never come out of a dispatcher; answered as bugs if they do
  MESH_PROXY_ORIG_PROTO_INVALID: { code: "MESH_PROXY_BAD_REQUEST" },
  MESH_TRANSPORT_HEADER_INVALID: INTERNAL,
  MESH_TRANSPORT_HEADER_TRUNCATED: INTERNAL,
  MESH_TRANSPORT_HEADER_TIMEOUT: INTERNAL,
  MESH_PROXY_STAT_SCRAPE_FAILED: INTERNAL,
  MESH_PROXY_STAT_BAD_RESPONSE: INTERNAL,
  MESH_PROXY_CONFIG_INVALID: INTERNAL,
  MESH_AUTHZ_CONFIG_INVALID: INTERNAL,
};

/**
 * Node, undici and llhttp codes, exactly. Connection failures before a response are
 * `UPSTREAM_CONNECT`, failures of an established connection `UPSTREAM_RESET`, undici's
 * own timeouts `TIMEOUT`, malformed responses `UPSTREAM_PROTOCOL`. (llhttp's parse errors
 * are the one family matched by prefix, `HPE_`.)
 */
export const FOREIGN_ERROR_ANSWERS: ReadonlyMap<string, ErrorAnswer> = new Map<string, ErrorAnswer>(
  [
    ...[
      "ECONNREFUSED",
      "EHOSTUNREACH",
      "ENETUNREACH",
      "ENOTFOUND",
      "EAI_AGAIN",
      "UND_ERR_CONNECT_TIMEOUT",
      "EADDRNOTAVAIL",
    ].map((c): [string, ErrorAnswer] => [c, { code: "MESH_PROXY_UPSTREAM_CONNECT" }]),
    ...[
      "ECONNRESET",
      "EPIPE",
      "UND_ERR_SOCKET",
      "UND_ERR_CLOSED",
      "UND_ERR_DESTROYED",
      "ERR_HTTP2_STREAM_ERROR",
      "ERR_HTTP2_SESSION_ERROR",
      "ERR_HTTP2_GOAWAY_SESSION",
      "ERR_HTTP2_INVALID_SESSION",
    ].map((c): [string, ErrorAnswer] => [c, { code: "MESH_PROXY_UPSTREAM_RESET" }]),
    ["UND_ERR_HEADERS_TIMEOUT", { code: "MESH_PROXY_TIMEOUT", reason: "response timeout" }],
    ["UND_ERR_BODY_TIMEOUT", { code: "MESH_PROXY_TIMEOUT", reason: "response idle timeout" }],
    ["ETIMEDOUT", { code: "MESH_PROXY_TIMEOUT", reason: "request timeout" }],
    ["UND_ERR_INFO", { code: "MESH_PROXY_UPSTREAM_PROTOCOL" }],
  ],
);
