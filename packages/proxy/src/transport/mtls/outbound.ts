import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { duration, optionsObject, typeError } from "@mesh/core";
import {
  clientTlsOptions,
  expectPerTarget,
  type IdentityMaterial,
  type PeerExpectation,
  type UndiciConnector,
  undiciConnector,
} from "@mesh/tls-identity";
import { MeshTlsError, outboundTlsError } from "./errors.js";
import { OPAQUE_ALPN } from "./inbound.js";

/** Options of {@link meshConnector}. @public */
export interface MeshConnectorOptions {
  /**
   * The server identity expected for a target: one ID for every target, or a function of
   * `{ hostname, port }` (what discovery said for that endpoint).
   */
  expect: string | ((target: { hostname: string; port: number }) => PeerExpectation);
  /** Offer `h2` first via ALPN. Default true (set `allowH2: true` on the Agent too). */
  allowH2?: boolean;
  /** Connect + handshake timeout, ms. Default 10 000. */
  timeoutMs?: number;
  /** Called with each connection whose handshake and identity check passed (metrics). */
  onConnect?: (socket: TLSSocket) => void;
}

/**
 * An undici `connect` function for proxy-to-proxy mTLS (undici 7 and 8 `Agent`, `Pool`,
 * `Client`): TLS 1.3 with the current SVID (new connections pick up rotated SVIDs), the
 * server's SPIFFE ID checked against `expect`, ALPN `h2` then `http/1.1`. TLS and
 * identity failures are reported as {@link MeshTlsError} (`MESH_PROXY_IDENTITY_MISMATCH`,
 * `MESH_PROXY_TLS_UNTRUSTED`, `MESH_PROXY_TLS_HANDSHAKE`) whose `reason` is ready for
 * `mesh-proxy-error`; plain network errors pass through unchanged.
 *
 * @public
 */
export function meshConnector(
  material: IdentityMaterial,
  options: MeshConnectorOptions,
): UndiciConnector {
  const o = optionsObject("options", options);
  const expect = o.expect;
  if (typeof expect !== "string" && typeof expect !== "function")
    throw typeError("options.expect", "a SPIFFE ID or a function of { hostname, port }", expect);
  const timeoutMs = duration("options.timeoutMs", o.timeoutMs, 10_000, 1);
  const connect = undiciConnector(material, {
    expect: typeof expect === "function" ? expectPerTarget(expect) : expect,
    allowH2: o.allowH2 ?? true,
    timeoutMs,
  });
  const onConnect = o.onConnect as ((socket: TLSSocket) => void) | undefined;
  return (params, callback) => {
    const port = Number(params.port) || (params.protocol === "https:" ? 443 : 80);
    const target = `${params.hostname}:${port}`;
    connect(params, (err, socket) => {
      if (err) callback(outboundTlsError(err, target), null);
      else {
        onConnect?.(socket as TLSSocket);
        callback(null, socket as TLSSocket);
      }
    });
  };
}

/** Options of {@link connectMeshTls}. @public */
export interface ConnectMeshTlsOptions {
  host: string;
  port: number;
  /** The server's expected SPIFFE ID (or a matcher). */
  expect: PeerExpectation;
  /** ALPN to offer. Default `[OPAQUE_ALPN]` (an opaque TCP stream). */
  alpnProtocols?: readonly string[];
  /** Connect + handshake timeout, ms. Default 10 000. */
  timeoutMs?: number;
}

/**
 * Opens an mTLS connection to a peer proxy (for opaque TCP: write a transport header,
 * then forward bytes). Resolves once the handshake and the server identity check passed;
 * rejects with a {@link MeshTlsError} for TLS/identity failures, or the network error.
 *
 * @public
 */
export function connectMeshTls(
  material: IdentityMaterial,
  options: ConnectMeshTlsOptions,
): Promise<TLSSocket> {
  const o = optionsObject("options", options);
  if (typeof o.host !== "string" || o.host === "")
    throw typeError("options.host", "a host name or IP", o.host);
  if (typeof o.port !== "number" || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535)
    throw typeError("options.port", "an integer port in 1..65535", o.port);
  const timeoutMs = duration("options.timeoutMs", o.timeoutMs, 10_000, 1);
  const target = `${o.host}:${o.port}`;
  let tlsOptions: ReturnType<typeof clientTlsOptions>;
  try {
    tlsOptions = clientTlsOptions(material, { expect: o.expect as PeerExpectation });
  } catch (err) {
    return Promise.reject(
      new MeshTlsError(
        "MESH_PROXY_IDENTITY_NOT_READY",
        "identity not ready",
        `cannot open mTLS to ${target}: ${(err as Error).message}`,
        err,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      ...tlsOptions,
      host: o.host,
      port: o.port,
      ALPNProtocols: [...(o.alpnProtocols ?? [OPAQUE_ALPN])],
    });
    socket.setNoDelay(true);
    const timer = setTimeout(
      () => socket.destroy(new Error(`mTLS to ${target}: no handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(outboundTlsError(err, target));
    };
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
  });
}
