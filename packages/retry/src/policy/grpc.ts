import { parseGrpcStatus, typeError } from "@mesh/core";

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
