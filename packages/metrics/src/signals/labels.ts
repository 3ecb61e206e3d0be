/** Traffic direction, as Linkerd labels it. */
export type Direction = "inbound" | "outbound";

/** The label set of HTTP signals. Resolve a handle once per distinct set. */
export interface HttpLabels {
  /** `inbound` (served by this process) or `outbound` (sent by it). */
  direction: Direction;
  /** The request authority (`host:port`). Capped: see `maxAuthorities`. */
  authority?: string | undefined;
  /**
   * Whether the connection is TLS: `true` → `tls="true"`, `false` → `tls="no_identity"`,
   * a string is used as is.
   */
  tls?: boolean | string | undefined;
  /** The client's identity (inbound, from its certificate). */
  clientId?: string | undefined;
  /** The server's identity (outbound, from its certificate). */
  serverId?: string | undefined;
  /** Route name, where known. Capped: see `maxRoutes`. */
  route?: string | undefined;
  /** Backend name, where known. */
  backend?: string | undefined;
}

/** The label set of TCP signals. */
export interface TcpLabels {
  /** `inbound` or `outbound`. */
  direction: Direction;
  /** The target authority or address. Capped like HTTP's. */
  authority?: string | undefined;
  /** As in {@link HttpLabels.tls}. */
  tls?: boolean | string | undefined;
  /** The client's identity. */
  clientId?: string | undefined;
  /** The server's identity. */
  serverId?: string | undefined;
}

/** Prometheus label names of the HTTP label set, in exposition order. */
export const HTTP_LABEL_NAMES = Object.freeze([
  "direction",
  "authority",
  "tls",
  "client_id",
  "server_id",
  "route",
  "backend",
] as const);

/** Prometheus label names of the TCP label set, in exposition order. */
export const TCP_LABEL_NAMES = Object.freeze([
  "direction",
  "authority",
  "tls",
  "client_id",
  "server_id",
] as const);

/** Renders the `tls` option as a label value. */
export function tlsLabel(tls: boolean | string | undefined): string | undefined {
  if (tls === true) return "true";
  if (tls === false) return "no_identity";
  return tls;
}
