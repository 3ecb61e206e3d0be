import type { Socket } from "node:net";
import { duration, integerIn, optionsObject } from "@mesh/core";

/**
 * What the first bytes of a connection are:
 * - `tls`: a TLS handshake record carrying a ClientHello;
 * - `h2`: the HTTP/2 prior-knowledge preface (`PRI * HTTP/2.0...`);
 * - `http1`: an HTTP/1.x request line (`METHOD SP target SP HTTP/1.x CRLF`);
 * - `opaque`: anything else, or nothing decisive before the timeout or byte limit;
 * - `closed`: the peer closed or failed before anything could be decided.
 *
 * @public
 */
export type SniffedProtocol = "tls" | "h2" | "http1" | "opaque" | "closed";

/** Why a connection was classified `opaque` or `closed`. @public */
export type SniffReason = "mismatch" | "timeout" | "limit" | "end" | "error";

/** The outcome of {@link sniffSocket}. @public */
export interface SniffResult {
  readonly protocol: SniffedProtocol;
  /** For `opaque`/`closed`: why. */
  readonly reason?: SniffReason;
  /**
   * The bytes that were peeked. For every result but `closed` they have been put back
   * (`unshift`), so the next reader of `socket` sees the stream from its first byte.
   */
  readonly bytes: Buffer;
  /** The same socket, paused, ready to be handed to a TLS/HTTP server or a forwarder. */
  readonly socket: Socket;
  /** The error that closed the socket, for `closed` with reason `error`. */
  readonly error?: Error;
}

/** Options of {@link sniffSocket}. @public */
export interface SniffOptions {
  /**
   * Give up and call the connection `opaque` after this many ms without a decision.
   * Default 10 000 (Linkerd's detect timeout). Server-speaks-first protocols (MySQL,
   * SMTP) wait this long: list their ports as opaque instead.
   */
  timeoutMs?: number;
  /** Give up (`opaque`, reason `limit`) after this many bytes. Default 16 384. */
  maxBytes?: number;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const TLS_HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
/** Largest TLS record payload allowed for a plaintext record (2^14) plus slack. */
const MAX_TLS_RECORD = 16_384 + 2_048;
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

/** RFC 9110 tchar as a lookup table. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;
const HTTP_VERSION = Buffer.from("HTTP/1.", "latin1");

/**
 * Classifies a prefix of a connection: a protocol, `undefined` when more bytes are
 * needed, or `opaque` as soon as the bytes can no longer be any known protocol. Pure; used
 * by {@link sniffSocket}.
 *
 * @public
 */
export function classifyBytes(buf: Buffer): "tls" | "h2" | "http1" | "opaque" | undefined {
  const n = buf.length;
  if (n === 0) return undefined;
  const first = buf[0] as number;
  if (first === TLS_HANDSHAKE) {
    // record: type(1) version(2) length(2), then handshake type(1)
    if (n >= 2 && buf[1] !== 0x03) return "opaque";
    if (n >= 3 && (buf[2] as number) > 0x04) return "opaque";
    if (n >= 5) {
      const len = buf.readUInt16BE(3);
      if (len < 4 || len > MAX_TLS_RECORD) return "opaque";
    }
    if (n >= 6) return buf[5] === CLIENT_HELLO ? "tls" : "opaque";
    return undefined;
  }
  if (first === 0x50 /* P */) {
    const m = Math.min(n, H2_PREFACE.length);
    if (buf.compare(H2_PREFACE, 0, m, 0, m) === 0)
      return m === H2_PREFACE.length ? "h2" : undefined;
    // Not the preface: may still be an HTTP/1 method starting with P (POST, PUT, PATCH).
  }
  return classifyRequestLine(buf);
}

/** `METHOD SP request-target SP HTTP/1.d CRLF` (a bare LF is tolerated, as Node's parser does). */
function classifyRequestLine(buf: Buffer): "http1" | "opaque" | undefined {
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const c = buf[i] as number;
    if (c === SP) break;
    if (c >= 128 || TCHAR[c] !== 1) return "opaque";
    i++;
  }
  if (i === n) return undefined;
  if (i === 0) return "opaque";
  i++; // SP
  const targetStart = i;
  while (i < n) {
    const c = buf[i] as number;
    if (c === SP) break;
    if (c <= SP || c === 0x7f) return "opaque";
    i++;
  }
  if (i === n) return undefined;
  if (i === targetStart) return "opaque";
  i++; // SP
  for (let k = 0; k < HTTP_VERSION.length; k++, i++) {
    if (i === n) return undefined;
    if (buf[i] !== HTTP_VERSION[k]) return "opaque";
  }
  if (i === n) return undefined;
  const minor = buf[i++] as number;
  if (minor !== 0x30 && minor !== 0x31) return "opaque";
  if (i === n) return undefined;
  const end = buf[i++] as number;
  if (end === LF) return "http1";
  if (end !== CR) return "opaque";
  if (i === n) return undefined;
  return buf[i] === LF ? "http1" : "opaque";
}

/**
 * Peeks at the first bytes of a freshly accepted socket without consuming them: reads
 * until {@link classifyBytes} decides, the byte limit, the timeout, or the end of the
 * stream, then pauses the socket and puts the bytes back with `unshift`. Never rejects;
 * a socket that closes or fails while being peeked gives `closed` (and is destroyed).
 *
 * Works one byte at a time as well as with everything in one segment. Hand the result's
 * socket to `tls`, `http2` (`server.emit("connection", socket)`) or a forwarder as is;
 * for `node:http` call `socket.resume()` right after `server.emit("connection", socket)`
 * (its parser reads the handle directly and only sees the put-back bytes once the
 * stream flows). Keep an `error` listener on the socket: this function removes its own.
 *
 * @throws TypeError/RangeError for invalid options.
 * @public
 */
export function sniffSocket(socket: Socket, options?: SniffOptions): Promise<SniffResult> {
  const o = optionsObject("options", options);
  const timeoutMs = duration("options.timeoutMs", o.timeoutMs, 10_000, 1);
  const maxBytes = integerIn("options.maxBytes", o.maxBytes, 16_384, 24, 1 << 20);
  return new Promise((resolve) => {
    let bytes: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (protocol: SniffedProtocol, reason?: SniffReason, error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (protocol === "closed") {
        socket.destroy();
      } else {
        socket.pause();
        if (bytes.length > 0) socket.unshift(bytes);
      }
      const result: { -readonly [K in keyof SniffResult]: SniffResult[K] } = {
        protocol,
        bytes,
        socket,
      };
      if (reason !== undefined) result.reason = reason;
      if (error !== undefined) result.error = error;
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
      const p = classifyBytes(bytes);
      if (p === "opaque") finish("opaque", "mismatch");
      else if (p !== undefined) finish(p);
      else if (bytes.length >= maxBytes) finish("opaque", "limit");
    };
    const onEnd = () => finish("closed", "end");
    const onError = (err: Error) => finish("closed", "error", err);
    const onClose = () => finish("closed", "end");
    const timer = setTimeout(() => finish("opaque", "timeout"), timeoutMs);
    if (socket.destroyed) {
      finish("closed", "end");
      return;
    }
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onError);
    socket.once("close", onClose);
    // The socket may be paused (pauseOnConnect, or by an earlier reader): start reading.
    socket.resume();
  });
}
