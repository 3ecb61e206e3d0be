/** The circuit breaker for an upstream is open: the request failed fast without being sent. */
export class CircuitOpenError extends Error {
  override readonly name = "CircuitOpenError";
  readonly code = "MESH_RETRY_CIRCUIT_OPEN";
  /** The breaker's name (its origin by default). */
  readonly breaker: string;
  constructor(breaker: string) {
    super(`circuit breaker for ${breaker} is open`);
    this.breaker = breaker;
  }
}
