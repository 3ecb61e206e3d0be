import type { Socket } from "node:net";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";
import { duration } from "@mesh/core";
import { clientSecureContext, type IdentityMaterial, serverIdentityChecker } from "./options.js";
import type { PeerExpectation } from "./peer.js";

/** What undici passes to a custom `connect` function. @public */
export interface UndiciConnectParams {
  hostname: string;
  host?: string;
  protocol: string;
  port: string | number;
  servername?: string | null;
  localAddress?: string | null;
  httpSocket?: Socket;
}

/** A custom undici `connect` function (`new Agent({ connect })`). @public */
export type UndiciConnector = (
  params: UndiciConnectParams,
  callback: (...args: [null, Socket | TLSSocket] | [Error, null]) => void,
) => void;

/** Options of {@link undiciConnector}. @public */
export interface UndiciConnectorOptions {
  /** The server identity to accept, or a function choosing it per target. */
  expect: PeerExpectation | ((target: { hostname: string; port: number }) => PeerExpectation);
  /** Offer HTTP/2 via ALPN (set `allowH2: true` on the Agent too). Default false. */
  allowH2?: boolean;
  /** Connect + handshake timeout in ms. Default 10 000. */
  timeoutMs?: number;
}

/**
 * An undici `connect` function for mesh mTLS: each new connection reads the identity's
 * *current* SVID and bundle (so an {@link SvidSource} rotation applies to new
 * connections, and pooled connections keep working), offers TLS 1.3 only, and checks the
 * server's SPIFFE ID. Works with undici 7 and 8 `Agent`/`Client`/`Pool`
 * (`new Agent({ connect: undiciConnector(source, { expect }) })`).
 *
 * @public
 */
export function undiciConnector(
  material: IdentityMaterial,
  options: UndiciConnectorOptions,
): UndiciConnector {
  const timeoutMs = duration(
    "options.timeoutMs",
    options.timeoutMs,
    10_000,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const alpn = options.allowH2 ? ["h2", "http/1.1"] : ["http/1.1"];
  const expect = options.expect;
  const staticChecker = isTargetFn(expect) ? undefined : serverIdentityChecker(expect);
  return (params, callback) => {
    const port = Number(params.port) || (params.protocol === "https:" ? 443 : 80);
    const checker =
      staticChecker ??
      serverIdentityChecker(
        (expect as (t: { hostname: string; port: number }) => PeerExpectation)({
          hostname: params.hostname,
          port,
        }),
      );
    let done = false;
    const host = params.hostname.startsWith("[") ? params.hostname.slice(1, -1) : params.hostname;
    const connectOptions: ConnectionOptions & { localAddress?: string } = {
      host,
      port,
      servername: params.servername ?? undefined,
      localAddress: params.localAddress ?? undefined,
      socket: params.httpSocket,
      secureContext: clientSecureContext(material),
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      rejectUnauthorized: true,
      checkServerIdentity: checker,
      ALPNProtocols: alpn,
    };
    const socket = tlsConnect(connectOptions);
    socket.setNoDelay(true);
    const timer = setTimeout(
      () => socket.destroy(new Error(`connect timeout after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      if (done) return;
      done = true;
      socket.removeListener("error", onError);
      callback(null, socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      if (done) return;
      done = true;
      callback(err, null);
    };
    socket.once("error", onError);
  };
}

/** Marks target-choosing functions: they take a `{ hostname, port }` object. */
const TARGET_FN = Symbol("mesh.identity.targetFn");

function isTargetFn(x: unknown): x is (t: { hostname: string; port: number }) => PeerExpectation {
  return typeof x === "function" && (x as unknown as Record<symbol, unknown>)[TARGET_FN] === true;
}

/**
 * Wraps a function that picks the expected server identity per target, for
 * {@link UndiciConnectorOptions.expect} (distinguishes it from a plain matcher).
 *
 * @public
 */
export function expectPerTarget(
  choose: (target: { hostname: string; port: number }) => PeerExpectation,
): (target: { hostname: string; port: number }) => PeerExpectation {
  const fn = (t: { hostname: string; port: number }) => choose(t);
  (fn as unknown as Record<symbol, unknown>)[TARGET_FN] = true;
  return fn;
}
