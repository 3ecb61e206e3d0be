import { rangeError, typeError } from "@mesh/core";

/** gRPC status names in Linkerd's kebab-case spelling, by code. */
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

/**
 * A set of gRPC status codes, from names (`unavailable`, `deadline-exceeded`, also
 * `UNAVAILABLE` or `DEADLINE_EXCEEDED`) or numbers, comma-separated or as an array.
 */
export class GrpcStatusSet {
  readonly #codes = new Uint8Array(17);
  /** Whether the set is empty (then responses are never held back for their trailers). */
  readonly empty: boolean;

  constructor(spec: string | readonly (string | number)[], path = "grpc") {
    if (typeof spec !== "string" && !Array.isArray(spec)) {
      throw typeError(path, 'gRPC status names like "unavailable"', spec);
    }
    const items = typeof spec === "string" ? spec.split(",") : spec;
    let any = false;
    for (const raw of items) {
      const code = parseGrpcStatus(raw, path);
      if (code === undefined) continue;
      this.#codes[code] = 1;
      any = true;
    }
    this.empty = !any;
  }

  /** Whether `code` is in the set. */
  has(code: number): boolean {
    return this.#codes[code] === 1;
  }
}

function parseGrpcStatus(raw: unknown, path: string): number | undefined {
  if (typeof raw === "number") {
    if (!Number.isInteger(raw) || raw < 0 || raw > 16) {
      throw rangeError(path, "a gRPC status code in 0..16", raw);
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

/** Reads a `grpc-status` header/trailer value; undefined when absent or malformed. */
export function readGrpcStatus(value: unknown): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v !== "string" || v.length === 0 || v.length > 2) return undefined;
  const code = Number(v);
  return Number.isInteger(code) && code >= 0 && code <= 16 ? code : undefined;
}
