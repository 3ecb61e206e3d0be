import type { EndpointInfo } from "@mesh/balancer";
import type { IdentityMaterial } from "@mesh/tls-identity";
import { type Dispatcher, Pool } from "undici";
import { MeshTlsError } from "../security/mtls/errors.js";
import { meshConnector } from "../security/mtls/outbound.js";
import { ORIG_PROTO_HEADER } from "../security/orig-proto/orig-proto.js";

/** How outbound connections to endpoints are secured. */
export interface MeshTransport {
  /** This proxy's SVID and bundle; absent when no identity is configured. */
  material: IdentityMaterial | undefined;
  /** Refuse endpoints without an identity instead of using plaintext. */
  requireIdentity: boolean;
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
 * The balancer's per-endpoint dispatcher factory. Endpoints with an identity get a pool
 * whose connections are mTLS (TLS 1.3, our SVID, the server's SPIFFE ID checked) and
 * speak HTTP/2 via ALPN, so every request to that peer, HTTP/1.1 ones included (carried
 * with `mesh-orig-proto`), is multiplexed on one connection. Endpoints without one get
 * plaintext (the protocol discovery and the request chose), or are refused under
 * `requireIdentity`.
 */
export function endpointFactory(
  transport: () => MeshTransport,
): (origin: string, options: Pool.Options, endpoint: EndpointInfo) => Dispatcher {
  return (origin, options, endpoint) => {
    const t = transport();
    if (endpoint.identity !== undefined && t.material !== undefined) {
      const connect = meshConnector(t.material, {
        expect: endpoint.identity,
        // The connect timeout plus time for the TLS handshake on a busy host.
        timeoutMs: ((options.connectTimeout as number | undefined) ?? 1_000) + 5_000,
      });
      const { useH2c: _plaintextOnly, ...rest } = options as Pool.Options & { useH2c?: boolean };
      // One HTTP/2 connection per peer (as Linkerd): without the cap the pool would open a
      // connection per request that arrives while the first handshake is in progress.
      return new Pool(origin, {
        ...rest,
        allowH2: true,
        connections: 1,
        maxConcurrentStreams: 1_000,
        connect,
      } as Pool.Options);
    }
    if (t.requireIdentity) {
      return new Pool(origin, {
        ...options,
        connect: refuseConnector(endpoint.address),
      } as Pool.Options);
    }
    return new Pool(origin, options).compose(stripOrigProto);
  };
}
