import { rangeError, typeError } from "../validate/errors.js";

/** gRPC status codes by name (the spec's spelling). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** gRPC status names in Linkerd's kebab-case spelling, indexed by code. */
export const grpcStatusNames = [
  "ok",
  "cancelled",
  "unknown",
  "invalid-argument",
  "deadline-exceeded",
  "not-found",
  "already-exists",
  "permission-denied",
  "resource-exhausted",
  "failed-precondition",
  "aborted",
  "out-of-range",
  "unimplemented",
  "internal",
  "unavailable",
  "data-loss",
  "unauthenticated",
] as const;

/** A gRPC status name accepted in options. */
export type GrpcStatusName = (typeof grpcStatusNames)[number];

/** The highest code gRPC defines (UNAUTHENTICATED). */
export const MAX_GRPC_STATUS = 16;

/**
 * Reads a `grpc-status` header or trailer value as received (a string, the first of an array,
 * or a number) and returns the code, or `undefined` when absent or not a non-negative integer
 * of at most three digits. Codes above 16 are returned as sent: classifiers treat them as
 * unknown statuses rather than as a missing one.
 */
export function readGrpcStatus(value: unknown): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 && v <= 999 ? v : undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > 3) return undefined;
  let code = 0;
  for (let i = 0; i < v.length; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    code = code * 10 + d;
  }
  return code;
}

/** Parsed headers or trailers: node:http(2) and undici's controller API both give this shape. */
export type ParsedHeaders =
  | Readonly<Record<string, string | string[] | number | undefined>>
  | null
  | undefined;

/** `grpc-status` from parsed headers (trailers-only responses) or trailers; see {@link readGrpcStatus}. */
export function grpcStatusOf(headers: ParsedHeaders): number | undefined {
  return headers == null ? undefined : readGrpcStatus(headers["grpc-status"]);
}

/**
 * Parses one gRPC status from options: a name (`unavailable`, `UNAVAILABLE`,
 * `deadline_exceeded`, `canceled`), a decimal string or a number in 0..16. An empty string
 * gives `undefined` (so `"a,,b"` lists are forgiving). Throws in the house format otherwise.
 */
export function parseGrpcStatus(raw: unknown, path: string): number | undefined {
  if (typeof raw === "number") {
    if (!Number.isInteger(raw) || raw < 0 || raw > MAX_GRPC_STATUS) {
      throw rangeError(path, `a gRPC status code in 0..${MAX_GRPC_STATUS}`, raw);
    }
    return raw;
  }
  if (typeof raw !== "string") throw typeError(path, "a gRPC status name", raw);
  const name = raw.trim().toLowerCase().replaceAll("_", "-");
  if (name === "") return undefined;
  if (/^\d+$/.test(name)) return parseGrpcStatus(Number(name), path);
  const code = (grpcStatusNames as readonly string[]).indexOf(
    name === "canceled" ? "cancelled" : name,
  );
  if (code < 0) throw rangeError(path, `a gRPC status name (${grpcStatusNames.join(", ")})`, raw);
  return code;
}

/**
 * The gRPC status a client derives from a non-200 HTTP status when the response carries no
 * `grpc-status` (gRPC's "HTTP to gRPC status code mapping"); undefined for 200.
 */
export function grpcStatusOfHttp(status: number): number | undefined {
  switch (status) {
    case 200:
      return undefined;
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * True for `application/grpc`, `application/grpc+proto`, `application/grpc;…` (not
 * grpc-web, whose trailers travel in the body).
 */
export function isGrpcContentType(contentType: unknown): boolean {
  if (typeof contentType !== "string") return false;
  return (
    contentType.startsWith("application/grpc") &&
    (contentType.length === 16 || contentType[16] === "+" || contentType[16] === ";")
  );
}
