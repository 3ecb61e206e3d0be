import { channel } from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";

/**
 * Payload of `mesh:authz:decision`, exactly as ARCHITECTURE.md lists it.
 *
 * @public
 */
export interface AuthzDecisionEvent {
  /** Whether the connection or request may proceed. */
  allowed: boolean;
  /** True when the decision was made by the `audit` default (allowed, but would be denied). */
  audit: boolean;
  /** The client's verified SPIFFE ID; absent for unauthenticated clients. */
  clientId?: string;
  /** The client's IP address as the socket reported it. */
  network: string;
  /** What is being authorized. */
  protocol: "http" | "grpc" | "tcp";
  /** The inbound port the client connected to. */
  port: number;
  /** Name of the rule route that matched (`prefix:/api`, `GET exact:/healthz`), if any. */
  route?: string;
  /** Why (see the README's reason table). */
  reason: string;
}

/** The `mesh:authz:decision` channel. @public */
export const authzDecisionChannel = channel(meshChannels.authz.decision);
