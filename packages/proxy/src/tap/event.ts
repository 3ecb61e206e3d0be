import diagnostics_channel from "node:diagnostics_channel";
import type { IncomingHttpHeaders } from "node:http";
import { meshChannels } from "@mesh/core";

/**
 * Payload of `mesh:proxy:request`: one request the proxy finished (answered, failed or
 * refused). Published only while someone subscribes (a `/tap` stream), so an untapped proxy
 * builds none.
 */
export interface TapEvent {
  /** Wall-clock time the request ended, ms since the epoch. */
  ts: number;
  direction: "inbound" | "outbound";
  method: string;
  /** Lower-cased authority, "" when absent. */
  authority: string;
  /** Path and query. */
  path: string;
  /** The matched route (outbound; `default` when none matched), absent when not routed. */
  route: string | undefined;
  /** The backend of the route's split the request went to (outbound). */
  backend: string | undefined;
  /** HTTP status sent to the client; 0 when the stream was reset mid-response. */
  status: number;
  /** gRPC status from headers or trailers, if any. */
  grpcStatus: number | undefined;
  /** Time to the response's first byte (or the proxy's error response), ms. */
  latencyMs: number;
  /** Time to the end of the response, ms. */
  durationMs: number;
  /** Response body bytes sent to the client. */
  bytes: number;
  /** Whether the request came (inbound) or went (outbound) over mTLS, when known. */
  tls: boolean | undefined;
  /** The client's verified SPIFFE ID (inbound). */
  clientId: string | undefined;
  /** The server's expected SPIFFE ID (outbound to a meshed endpoint). */
  serverId: string | undefined;
  /**
   * Inbound: the app's `host:port` the request was forwarded to. Outbound it is absent: the
   * balancer picks the endpoint below the retry layer and does not report it per request.
   */
  endpoint: string | undefined;
  /** The proxy's error (`mesh-proxy-error` reason) when it answered or reset itself. */
  error: string | undefined;
  /**
   * The request headers, by reference: subscribers show only those `admin.tap.headers`
   * allows. Never serialize this object whole.
   */
  headers: IncomingHttpHeaders;
}

/** The `mesh:proxy:request` channel. Check `hasSubscribers` before building an event. */
export const requestChannel = diagnostics_channel.channel(meshChannels.proxy.request);

/** The request facts {@link publishRequest} reads (the pipeline's request object has them). */
export interface TappedRequest {
  method: string;
  authority: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** performance.now() when the request arrived. */
  start: number;
  peer: { clientId: string | undefined; tls: boolean } | undefined;
}

/** Where a request was routed, as the pipeline's target says. */
export interface TappedTarget {
  /** undici origin of the dispatch (`http://host:port`; outbound, the service's name). */
  origin?: string | undefined;
  route?: string | undefined;
  backend?: string | undefined;
  tls?: boolean | undefined;
  serverId?: string | undefined;
}

/**
 * Publishes a finished request on {@link requestChannel}. The caller checks
 * `requestChannel.hasSubscribers` first: this is the only place a tap event is allocated.
 */
export function publishRequest(
  direction: "inbound" | "outbound",
  r: TappedRequest,
  target: TappedTarget | undefined,
  status: number,
  grpcStatus: number | undefined,
  bytes: number,
  firstByteAt: number,
  error: string | undefined,
): void {
  const now = performance.now();
  const peer = r.peer;
  const event: TapEvent = {
    ts: Date.now(),
    direction,
    method: r.method,
    authority: r.authority,
    path: r.path,
    route: target?.route,
    backend: target?.backend,
    status,
    grpcStatus,
    latencyMs: (firstByteAt || now) - r.start,
    durationMs: now - r.start,
    bytes,
    tls: peer !== undefined ? peer.tls : target?.tls,
    clientId: peer?.clientId,
    serverId: peer === undefined ? target?.serverId : undefined,
    endpoint:
      direction === "inbound" && target?.origin !== undefined
        ? target.origin.slice(target.origin.indexOf("//") + 2)
        : undefined,
    error,
    headers: r.headers,
  };
  requestChannel.publish(event);
}
