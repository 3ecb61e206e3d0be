import diagnostics_channel from "node:diagnostics_channel";
import { meshChannels } from "@mesh/core";

/**
 * Payload of `mesh:identity:svid`: a new SVID is in use. Times are milliseconds since
 * the epoch.
 *
 * @public
 */
export interface SvidEvent {
  spiffeId: string;
  notBefore: number;
  notAfter: number;
  serialNumber: string;
  source: "issuer" | "files" | "workload-api";
}

/**
 * Payload of `mesh:identity:refresh-failed`: obtaining a new SVID failed; the current one
 * (if any) stays in use and a retry is scheduled in `retryInMs`.
 *
 * @public
 */
export interface RefreshFailedEvent {
  /** The identity being refreshed (`""` before the first SVID is known). */
  spiffeId: string;
  error: Error;
  retryInMs: number;
}

/**
 * Payload of `mesh:identity:issued`: the issuer signed an SVID.
 *
 * @public
 */
export interface IssuedEvent {
  spiffeId: string;
  notAfter: number;
}

/** The diagnostics channels this package publishes on (names from `@mesh/core`). */
const channels = {
  svid: diagnostics_channel.channel(meshChannels.identity.svid),
  refreshFailed: diagnostics_channel.channel(meshChannels.identity.refreshFailed),
  issued: diagnostics_channel.channel(meshChannels.identity.issued),
} as const;

/** Publishes only when someone listens, so an unobserved event costs a property read. */
export function publishSvid(build: () => SvidEvent): void {
  if (channels.svid.hasSubscribers) channels.svid.publish(build());
}

export function publishRefreshFailed(event: RefreshFailedEvent): void {
  if (channels.refreshFailed.hasSubscribers) channels.refreshFailed.publish(event);
}

export function publishIssued(spiffeId: string, notAfter: number): void {
  if (channels.issued.hasSubscribers) channels.issued.publish({ spiffeId, notAfter });
}
