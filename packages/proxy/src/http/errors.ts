import type { ServerResponse } from "node:http";
import { GrpcStatus, MeshError } from "@mesh/core";
import { type ErrorAnswer, FOREIGN_ERROR_ANSWERS, MESH_ERROR_ANSWERS } from "./error-table.js";
import { encodeGrpcMessage } from "./grpc.js";
import { H2Exchange } from "./h2-exchange.js";

/** Header on every response the proxy generates itself, with a short reason. */
export const PROXY_ERROR_HEADER = "mesh-proxy-error";

/** What went wrong, with the HTTP status and gRPC status the client receives. */
const KINDS = {
  MESH_PROXY_UPSTREAM_CONNECT: {
    status: 502,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "upstream connection failed",
  },
  MESH_PROXY_UPSTREAM_RESET: {
    status: 502,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "upstream connection reset",
  },
  MESH_PROXY_UPSTREAM_PROTOCOL: {
    status: 502,
    grpc: GrpcStatus.INTERNAL,
    reason: "invalid upstream response",
  },
  MESH_PROXY_NO_ENDPOINTS: {
    status: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "no endpoint ready",
  },
  MESH_PROXY_CIRCUIT_OPEN: {
    status: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "circuit breaker open",
  },
  MESH_PROXY_LOAD_SHED: {
    status: 503,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    reason: "load shed: too many requests in flight",
  },
  MESH_PROXY_RATE_LIMITED: {
    status: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    reason: "rate limited",
  },
  MESH_PROXY_CONCURRENCY_LIMITED: {
    status: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "concurrency limit reached",
  },
  MESH_PROXY_ENDPOINT_OVERLOADED: {
    status: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "endpoint overloaded: too many requests pending",
  },
  MESH_PROXY_TIMEOUT: {
    status: 504,
    grpc: GrpcStatus.DEADLINE_EXCEEDED,
    reason: "request timeout",
  },
  MESH_PROXY_UNKNOWN_AUTHORITY: {
    status: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    reason: "unknown authority denied",
  },
  MESH_PROXY_IDENTITY_MISMATCH: {
    status: 502,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "identity mismatch",
  },
  MESH_PROXY_TLS: {
    status: 502,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "tls handshake failed",
  },
  MESH_PROXY_IDENTITY_REQUIRED: {
    status: 502,
    grpc: GrpcStatus.UNAVAILABLE,
    reason: "endpoint has no identity",
  },
  MESH_PROXY_FORBIDDEN: {
    status: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    reason: "forbidden by policy",
  },
  MESH_PROXY_BAD_REQUEST: { status: 400, grpc: GrpcStatus.INTERNAL, reason: "bad request" },
  MESH_PROXY_HEADERS_TOO_LARGE: {
    status: 431,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    reason: "request headers too large",
  },
  MESH_PROXY_LOOP: { status: 508, grpc: GrpcStatus.INTERNAL, reason: "proxy loop detected" },
  MESH_PROXY_INTERNAL: { status: 502, grpc: GrpcStatus.INTERNAL, reason: "proxy error" },
} as const;

/** Stable codes of {@link ProxyError}. */
export type ProxyErrorCode = keyof typeof KINDS;

/** Every code a {@link ProxyError} may carry. */
export const proxyErrorCodes = Object.keys(KINDS) as ProxyErrorCode[];

/**
 * A failure the proxy answers itself. `status`/`grpcStatus` are what the client sees,
 * `reason` goes into the `mesh-proxy-error` header.
 */
export class ProxyError extends MeshError<ProxyErrorCode> {
  readonly status: number;
  readonly grpcStatus: number;
  readonly reason: string;
  /** When the client may try again, ms (`retry-after`; gRPC `grpc-retry-pushback-ms`). */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ProxyErrorCode,
    reason?: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    const kind = KINDS[code];
    const r = reason ?? kind.reason;
    super(code, r, options);
    this.name = "ProxyError";
    this.status = kind.status;
    this.grpcStatus = kind.grpc;
    this.reason = r;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * Maps an upstream failure (undici, node, or an @mesh library error) to a {@link ProxyError}
 * through the exact tables in `error-table.ts`: a library's stable `code` decides, never a
 * pattern over it. An unknown code looks one level into `cause` (undici wraps connection
 * errors), then answers 502 "proxy error".
 */
export function classifyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as { code?: unknown; reason?: unknown; cause?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const answer =
    (MESH_ERROR_ANSWERS as Readonly<Record<string, ErrorAnswer>>)[code] ??
    FOREIGN_ERROR_ANSWERS.get(code) ??
    (code.startsWith("HPE_") ? PROTOCOL : undefined);
  if (answer !== undefined) {
    // MeshTlsError carries a reason more precise than its kind's ("untrusted server certificate").
    const own =
      code.startsWith("MESH_PROXY_") && typeof e?.reason === "string" ? e.reason : undefined;
    // A rate limit says when to come back (@mesh/limit's RateLimitedError).
    const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs;
    return new ProxyError(answer.code, answer.reason ?? own, {
      cause: err,
      ...(typeof retryAfterMs === "number" ? { retryAfterMs } : {}),
    });
  }
  if (e?.cause !== undefined && e.cause !== err) {
    const inner = classifyError(e.cause);
    if (inner.code !== "MESH_PROXY_INTERNAL") return inner;
  }
  return new ProxyError("MESH_PROXY_INTERNAL", undefined, { cause: err });
}

const PROTOCOL: ErrorAnswer = { code: "MESH_PROXY_UPSTREAM_PROTOCOL" };

type AnyResponse = ServerResponse | H2Exchange;

/**
 * Answers a request with a proxy-generated error: HTTP gets the status and a one-line body,
 * gRPC gets a trailers-only response (HTTP 200, `grpc-status`, `grpc-message`). Both carry
 * `mesh-proxy-error`. Does nothing if the response already started.
 */
export function respondWithError(
  res: AnyResponse,
  err: ProxyError,
  grpc: boolean,
  closeConnection = false,
): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  if (grpc) {
    const headers: Record<string, string | number> = {
      "content-type": "application/grpc",
      "grpc-status": err.grpcStatus,
      "grpc-message": encodeGrpcMessage(err.reason),
      [PROXY_ERROR_HEADER]: err.reason,
    };
    if (err.retryAfterMs !== undefined) {
      headers["retry-after"] = retryAfterSeconds(err.retryAfterMs);
      headers["grpc-retry-pushback-ms"] = Math.ceil(err.retryAfterMs);
    }
    if (res instanceof H2Exchange) {
      res.respondHeadOnly(200, headers);
      return;
    }
    (res as ServerResponse).writeHead(200, headers as Record<string, string>);
    res.end();
    return;
  }
  const body = `${err.reason}\n`;
  const headers: Record<string, string | number> = {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    [PROXY_ERROR_HEADER]: err.reason,
  };
  if (err.retryAfterMs !== undefined) headers["retry-after"] = retryAfterSeconds(err.retryAfterMs);
  if (closeConnection && !(res instanceof H2Exchange)) headers.connection = "close";
  (res as ServerResponse).writeHead(err.status, headers as Record<string, string>);
  res.end(body);
}

/** `retry-after` in whole seconds, rounded up, at least 1 (HTTP has no finer unit). */
function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
