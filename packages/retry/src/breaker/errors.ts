import { MeshError } from "@mesh/core";

/** The circuit breaker for an upstream is open: the request failed fast without being sent. */
export class CircuitOpenError extends MeshError<"MESH_RETRY_CIRCUIT_OPEN"> {
  override readonly name = "CircuitOpenError";
  /** The breaker's name (its origin by default). */
  readonly breaker: string;
  constructor(breaker: string) {
    super("MESH_RETRY_CIRCUIT_OPEN", `circuit breaker for ${breaker} is open`);
    this.breaker = breaker;
  }
}
