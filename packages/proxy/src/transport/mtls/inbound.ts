import type { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { createServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import { duration, optionsObject, typeError } from "@mesh/core";
import {
  type IdentityMaterial,
  peerSpiffeId,
  type SecureServerBinding,
  type SpiffeId,
  type SpiffeIdMatcher,
  secureServer,
  serverTlsOptions,
} from "@mesh/tls-identity";
import { MeshTlsError } from "./errors.js";

/**
 * ALPN protocol id for an opaque TCP stream between proxies: the TLS stream starts with
 * a transport header (see TRANSPORT-HEADER.md), then the raw bytes.
 *
 * @public
 */
export const OPAQUE_ALPN = "mesh.tcp/1";

/** ALPN protocols the inbound side offers, in preference order. @public */
export const INBOUND_ALPN: readonly string[] = ["h2", "http/1.1", OPAQUE_ALPN];

/** Options of {@link InboundTls}. @public */
export interface InboundTlsOptions {
  /** ALPN protocols to accept. Default {@link INBOUND_ALPN}. */
  alpnProtocols?: readonly string[];
  /** Refuse a client that has not finished the handshake in this many ms. Default 10 000. */
  handshakeTimeoutMs?: number;
  /**
   * Which verified client identities may finish the handshake. Default: any identity the
   * trust bundle verifies — authorization per identity is the policy's job, so that a
   * denied HTTP client gets a 403 rather than a TLS failure.
   */
  authorize?: SpiffeIdMatcher;
}

/** A client connection that passed mTLS. @public */
export interface TerminatedTls {
  /** The decrypted stream; hand it to an HTTP/1, HTTP/2 server or a forwarder. */
  readonly socket: TLSSocket;
  /** The client's verified SPIFFE ID. */
  readonly peerId: SpiffeId;
  /** The negotiated ALPN protocol (`h2`, `http/1.1`, {@link OPAQUE_ALPN}) or `false`. */
  readonly alpn: string | false;
}

type Pending = { resolve: (t: TerminatedTls) => void; reject: (e: Error) => void };

/** The raw socket a server-side TLSSocket wraps (`_parent`, set by node:tls for net.Socket). */
function rawOf(tlsSocket: TLSSocket): Socket | undefined {
  return (tlsSocket as unknown as { _parent?: Socket })._parent;
}

function refusal(err: Error): MeshTlsError {
  const code = (err as { code?: string }).code ?? "";
  if (code.startsWith("MESH_IDENTITY_PEER_"))
    return new MeshTlsError(
      "MESH_PROXY_TLS_REFUSED",
      code === "MESH_IDENTITY_PEER_REJECTED"
        ? "client identity not accepted"
        : "client not authenticated",
      `mTLS client refused: ${err.message}`,
      err,
      (err as { peerId?: string }).peerId,
    );
  if (code === "ERR_TLS_HANDSHAKE_TIMEOUT")
    return new MeshTlsError(
      "MESH_PROXY_TLS_REFUSED",
      "tls handshake timeout",
      "mTLS client refused: the TLS handshake timed out",
      err,
    );
  if (code === "ECONNRESET")
    return new MeshTlsError(
      "MESH_PROXY_TLS_REFUSED",
      "client closed",
      "mTLS client closed the connection during the TLS handshake",
      err,
    );
  return new MeshTlsError(
    "MESH_PROXY_TLS_REFUSED",
    "tls handshake failed",
    `mTLS client refused: TLS handshake failed: ${err.message}`,
    err,
  );
}

/**
 * Terminates mTLS on sockets the inbound listener has sniffed as TLS: TLS 1.3 only, the
 * proxy's current SVID, a client certificate required and verified against the trust
 * bundle, ALPN `h2` / `http/1.1` / {@link OPAQUE_ALPN}. Backed by one non-listening
 * `tls.Server`, bound with `secureServer` from @mesh/tls-identity, so when the identity is
 * an `SvidSource` a new SVID or bundle applies to new connections while established ones
 * continue.
 *
 * @public
 */
export class InboundTls {
  readonly #material: IdentityMaterial & Partial<Pick<EventEmitter, "on" | "off">>;
  readonly #alpn: string[];
  readonly #handshakeTimeoutMs: number;
  readonly #authorize: SpiffeIdMatcher;
  readonly #pending = new WeakMap<Socket, Pending>();
  #server: TlsServer | undefined;
  #binding: SecureServerBinding | undefined;

  constructor(material: IdentityMaterial, options?: InboundTlsOptions) {
    if (material === null || typeof material !== "object")
      throw typeError("material", "an SvidSource or { svid, bundle }", material);
    const o = optionsObject("options", options);
    this.#material = material;
    this.#handshakeTimeoutMs = duration(
      "options.handshakeTimeoutMs",
      o.handshakeTimeoutMs,
      10_000,
      1,
    );
    const alpn = o.alpnProtocols ?? INBOUND_ALPN;
    if (
      !Array.isArray(alpn) ||
      alpn.length === 0 ||
      alpn.some((p) => typeof p !== "string" || p.length === 0 || p.length > 255)
    )
      throw typeError("options.alpnProtocols", "a non-empty array of ALPN protocol ids", alpn);
    this.#alpn = [...alpn];
    if (o.authorize !== undefined && typeof o.authorize !== "function")
      throw typeError("options.authorize", "a function (SpiffeId) => boolean", o.authorize);
    this.#authorize = o.authorize ?? (() => true);
  }

  #ensureServer(): TlsServer {
    if (this.#server) return this.#server;
    let options: ReturnType<typeof serverTlsOptions>;
    try {
      options = serverTlsOptions(this.#material);
    } catch (err) {
      throw new MeshTlsError(
        "MESH_PROXY_IDENTITY_NOT_READY",
        "identity not ready",
        `cannot terminate mTLS: ${(err as Error).message}`,
        err,
      );
    }
    const server = createServer({
      ...options,
      ALPNProtocols: this.#alpn,
      handshakeTimeout: this.#handshakeTimeoutMs,
    });
    this.#binding = secureServer(server, this.#material, { authorize: this.#authorize });
    server.on("secureConnection", (tlsSocket: TLSSocket) => {
      const raw = rawOf(tlsSocket);
      const p = raw && this.#pending.get(raw);
      const peerId = peerSpiffeId(tlsSocket);
      if (!p || !peerId) {
        // Cannot tie it to a caller, or no verified ID: fail closed.
        tlsSocket.destroy();
        p?.reject(
          new MeshTlsError(
            "MESH_PROXY_TLS_REFUSED",
            "client not authenticated",
            "mTLS client refused: no verified SPIFFE ID",
          ),
        );
        return;
      }
      this.#pending.delete(raw as Socket);
      p.resolve({ socket: tlsSocket, peerId, alpn: tlsSocket.alpnProtocol ?? false });
    });
    server.on("tlsClientError", (err: Error, tlsSocket: TLSSocket) => {
      tlsSocket.destroy();
      const raw = rawOf(tlsSocket);
      const p = raw && this.#pending.get(raw);
      if (!p) return;
      this.#pending.delete(raw as Socket);
      p.reject(refusal(err));
    });
    this.#server = server;
    return server;
  }

  /**
   * Runs the server side of the handshake on `raw` (typically the socket returned by
   * `sniffSocket` with protocol `tls`, its bytes put back). Resolves with the decrypted
   * socket and the client's verified SPIFFE ID; rejects with a {@link MeshTlsError}
   * (`MESH_PROXY_TLS_REFUSED`, `reason` says why) after destroying the connection.
   */
  terminate(raw: Socket): Promise<TerminatedTls> {
    let server: TlsServer;
    try {
      server = this.#ensureServer();
    } catch (err) {
      raw.destroy();
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(raw, { resolve, reject });
      server.emit("connection", raw);
    });
  }

  /** Stops following identity updates. Established connections are unaffected. */
  close(): void {
    this.#binding?.close();
  }
}
