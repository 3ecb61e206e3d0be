import { channel } from "node:diagnostics_channel";

/** States an endpoint moves through, as published on `mesh:balancer:endpoint`. */
export type EndpointState = "ready" | "ejected" | "probing" | "draining" | "removed";

/** Payload of `mesh:balancer:endpoint`: an endpoint changed state. */
export interface EndpointEvent {
  /** Name of the balancer. */
  balancer: string;
  /** The endpoint, `host:port` (`[v6]:port`). */
  address: string;
  state: EndpointState;
  /** Why, when known: `added`, `consecutive-failures`, `probe-due`, `probe-succeeded`, `probe-failed`, `success`, `removed`, `drained`, `closed`. */
  reason?: string;
  /** Load cost at the time of the change (estimate × (pending + 1) / weight). */
  cost: number;
  /** Requests in flight to the endpoint. */
  pending: number;
}

/** Payload of `mesh:balancer:fail-fast`: a request gave up waiting for a ready endpoint. */
export interface FailFastEvent {
  balancer: string;
  /** How long the request waited, in milliseconds. */
  waitedMs: number;
}

/** Channel names this package publishes on. */
export const CHANNELS = {
  endpoint: "mesh:balancer:endpoint",
  failFast: "mesh:balancer:fail-fast",
} as const;

/** @internal */
export const endpointChannel = channel(CHANNELS.endpoint);
/** @internal */
export const failFastChannel = channel(CHANNELS.failFast);
