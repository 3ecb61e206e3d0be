import type { TLSSocket } from "node:tls";
import type { EndpointInfo } from "@mesh/balancer";
import { type H2Connector, Http2Client } from "@mesh/balancer";
import type { IdentityMaterial } from "@mesh/tls-identity";
import { type Dispatcher, Pool } from "undici";
import { MeshTlsError } from "../transport/mtls/errors.js";
import { meshConnector } from "../transport/mtls/outbound.js";
import { ORIG_PROTO_HEADER } from "../transport/orig-proto.js";

/** How outbound connections to endpoints are secured. */
export interface MeshTransport {
  /** This proxy's SVID and bundle; absent when no identity is configured. */
  material: IdentityMaterial | undefined;
  /** Refuse endpoints without an identity instead of using plaintext. */
  requireIdentity: boolean;
  /**
   * How HTTP/1.x requests reach a meshed endpoint (`outbound.meshHttp1`): multiplexed on its
   * HTTP/2 connection (`h2`, the default) or over a pool of mTLS HTTP/1.1 connections.
   */
  meshHttp1?: "h2" | "http1";
  /** Called with each mTLS connection to a peer once it is verified (metrics). */
  onTlsConnect?: ((socket: TLSSocket, serverId: string) => void) | undefined;
}

/** Removes `mesh-orig-proto` (set for meshed endpoints) before a plaintext endpoint sees it. */
function stripOrigProto(dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch {
  return (opts, handler) => {
    const h = opts.headers;
    if (Array.isArray(h)) {
      const i = h.indexOf(ORIG_PROTO_HEADER);
      if (i !== -1 && i % 2 === 0) {
        const headers = h.slice();
        headers.splice(i, 2);
        return dispatch({ ...opts, headers }, handler);
      }
    }
    return dispatch(opts, handler);
  };
}

/** Fails every connection attempt: an endpoint without identity under `requireIdentity`. */
function refuseConnector(address: string) {
  const err = new MeshTlsError(
    "MESH_PROXY_TLS_REFUSED",
    "endpoint has no identity",
    `${address} has no identity and outbound.requireIdentity is set: refusing plaintext`,
  );
  return (_params: unknown, callback: (err: Error | null, socket: null) => void) => {
    queueMicrotask(() => callback(err, null));
  };
}

/**
 * The balancer's per-endpoint dispatcher factory. Endpoints with an identity get one
 * mTLS connection (TLS 1.3, our SVID, the server's SPIFFE ID checked) speaking HTTP/2 via
 * ALPN, so every request to that peer, HTTP/1.1 ones included (carried with
 * `mesh-orig-proto`), is multiplexed on it; with `meshHttp1: "http1"`, an HTTP/1.1
 * balancer's meshed endpoints get a pool of mTLS HTTP/1.1 connections instead (ALPN
 * `http/1.1`, same identity checks). Endpoints without one get plaintext (the protocol
 * discovery and the request chose), or are refused under `requireIdentity`. HTTP/2 goes
 * through {@link Http2Client} (node:http2), HTTP/1.1 through an undici `Pool`.
 */
export function endpointFactory(
  transport: () => MeshTransport,
  /** Whether the balancer carries HTTP/1 clients' requests (so they may cross as HTTP/1.1). */
  http1Clients = false,
): (origin: string, options: Pool.Options, endpoint: EndpointInfo) => Dispatcher {
  return (origin, options, endpoint) => {
    const t = transport();
    if (endpoint.identity !== undefined && t.material !== undefined) {
      const serverId = endpoint.identity;
      const onTlsConnect = t.onTlsConnect;
      const http1 = http1Clients && t.meshHttp1 === "http1";
      const connect = meshConnector(t.material, {
        expect: serverId,
        allowH2: !http1,
        onConnect: onTlsConnect && ((socket) => onTlsConnect(socket, serverId)),
        // The connect timeout plus time for the TLS handshake on a busy host.
        timeoutMs: ((options.connectTimeout as number | undefined) ?? 1_000) + 5_000,
      });
      // Keep-alive HTTP/1.1 over mTLS (as an nginx pair): one request per connection at a time.
      if (http1)
        return new Pool(origin.replace(/^http:/, "https:"), {
          ...options,
          allowH2: false,
          connect,
        } as Pool.Options);
      // One multiplexed HTTP/2 connection per peer, as Linkerd.
      return new Http2Client(origin.replace(/^http:/, "https:"), {
        connect: connect as unknown as H2Connector,
      });
    }
    if (t.requireIdentity) {
      return new Pool(origin, {
        ...options,
        connect: refuseConnector(endpoint.address),
      } as Pool.Options);
    }
    if ((options as { useH2c?: boolean }).useH2c === true) {
      return new Http2Client(origin, {
        connectTimeout: options.connectTimeout as number | undefined,
      }).compose(stripOrigProto);
    }
    return new Pool(origin, options).compose(stripOrigProto);
  };
}
