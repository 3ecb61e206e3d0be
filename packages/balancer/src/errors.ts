import { MeshError } from "@mesh/core";

/** Every stable `code` this package's errors carry; `@mesh/proxy` maps each to a status. */
export const balancerErrorCodes = [
  "MESH_BALANCER_NO_ENDPOINTS_READY",
  "MESH_BALANCER_ENDPOINT_OVERLOADED",
  "MESH_BALANCER_CLOSED",
  "MESH_BALANCER_RESOLVER",
] as const;

/** A stable error code of this package. */
export type BalancerErrorCode = (typeof balancerErrorCodes)[number];

/**
 * Raised when a request waited the whole fail-fast timeout and no endpoint became ready
 * (none exist, or all are ejected by failure accrual).
 */
export class NoEndpointsReadyError extends MeshError<"MESH_BALANCER_NO_ENDPOINTS_READY"> {
  /** Name of the balancer that failed fast. */
  readonly balancer: string;
  /** How long the request waited, in milliseconds. */
  readonly waitedMs: number;

  constructor(balancer: string, waitedMs: number) {
    super(
      "MESH_BALANCER_NO_ENDPOINTS_READY",
      `balancer "${balancer}": no endpoint became ready within ${Math.round(waitedMs)} ms`,
    );
    this.name = "NoEndpointsReadyError";
    this.balancer = balancer;
    this.waitedMs = waitedMs;
  }
}

/**
 * Raised at once for a request whose chosen endpoint already has `maxPendingPerEndpoint`
 * requests in flight or queued: a fast, explicit overload signal instead of an unbounded queue.
 */
export class EndpointOverloadedError extends MeshError<"MESH_BALANCER_ENDPOINT_OVERLOADED"> {
  /** Name of the balancer. */
  readonly balancer: string;
  /** The endpoint at its limit (`host:port`). */
  readonly address: string;

  constructor(balancer: string, address: string, pending: number) {
    super(
      "MESH_BALANCER_ENDPOINT_OVERLOADED",
      `balancer "${balancer}": endpoint ${address} has ${pending} requests pending (maxPendingPerEndpoint)`,
    );
    this.name = "EndpointOverloadedError";
    this.balancer = balancer;
    this.address = address;
  }
}

/** Raised for requests dispatched to, or still waiting in, a balancer that was closed. */
export class BalancerClosedError extends MeshError<"MESH_BALANCER_CLOSED"> {
  constructor(balancer: string) {
    super("MESH_BALANCER_CLOSED", `balancer "${balancer}" is closed`);
    this.name = "BalancerClosedError";
  }
}

/** Raised (or reported by a resolver) when discovery data cannot be used. */
export class ResolverError extends MeshError<"MESH_BALANCER_RESOLVER"> {
  /** Which resolver and source failed, e.g. `file:/etc/mesh/endpoints.yaml`. */
  readonly source: string;

  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super("MESH_BALANCER_RESOLVER", `${source}: ${message}`, options);
    this.name = "ResolverError";
    this.source = source;
  }
}
