import { channel } from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";

/** States an endpoint moves through, as published on `mesh:balancer:endpoint`. */
export type EndpointState = "ready" | "ejected" | "probing" | "draining" | "removed";

/** Payload of `mesh:balancer:endpoint`: an endpoint changed state. */
export interface EndpointEvent {
  /** Name of the balancer. */
  balancer: string;
  /** The endpoint, `host:port` (`[v6]:port`). */
  address: string;
  state: EndpointState;
  /** Why, when known: `added`, `consecutive-failures`, `success-rate`, `probe-due`, `probe-succeeded`, `probe-failed`, `success`, `removed`, `drained`, `closed`. */
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

/**
 * Payload of `mesh:balancer:zone`: a zone-local balancer (`localZone` set) switched between
 * picking in its own zone and spilling over to every ready endpoint.
 */
export interface ZoneEvent {
  balancer: string;
  /** The balancer's local zone. */
  zone: string;
  /** `local`: picks among the local zone's ready endpoints; `spillover`: among all ready ones. */
  state: "local" | "spillover";
  /** `no-local-endpoint`, `overloaded` (spillover) or `recovered` (back to local). */
  reason: "no-local-endpoint" | "overloaded" | "recovered";
  /** Ready endpoints in the local zone at that moment. */
  localReady: number;
  /** Requests awaiting response headers from them. */
  localPending: number;
}

/** @internal */
export const endpointChannel = channel(meshChannels.balancer.endpoint);
/** @internal */
export const failFastChannel = channel(meshChannels.balancer.failFast);
/** @internal */
export const zoneChannel = channel(meshChannels.balancer.zone);
