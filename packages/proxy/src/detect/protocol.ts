import type { Socket } from "node:net";

/** What the first bytes of a connection say it speaks. */
export type DetectedProtocol = "h2" | "http1" | "tls";

/** Why detection gave up on a connection. */
export type DetectFailure = "timeout" | "closed";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const TLS_HANDSHAKE = 0x16;

/**
 * Decides from the bytes seen so far; `undefined` means more bytes are needed. HTTP/2
 * prior knowledge needs the whole 24-byte preface; a TLS record starts with 0x16 (the
 * TLS stage lands with mTLS); anything else is handed to the HTTP/1 parser, which
 * rejects what is not HTTP.
 */
export function classifyPrefix(buf: Buffer): DetectedProtocol | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === TLS_HANDSHAKE) return "tls";
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.compare(H2_PREFACE, 0, n, 0, n) === 0) return n === H2_PREFACE.length ? "h2" : undefined;
  return "http1";
}

/**
 * Reads the first bytes of a raw connection until the protocol is known, then puts them
 * back (`unshift`) so the chosen server parses the stream from its start. Rejects nothing:
 * resolves with a failure reason when the peer is silent for `timeoutMs` or goes away.
 */
export function detectProtocol(
  socket: Socket,
  timeoutMs: number,
): Promise<DetectedProtocol | DetectFailure> {
  return new Promise((resolve) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (result: DetectedProtocol | DetectFailure) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.off("error", onClose);
      socket.pause();
      if (buffered.length > 0 && result !== "timeout" && result !== "closed")
        socket.unshift(buffered);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const p = classifyPrefix(buffered);
      if (p !== undefined) finish(p);
    };
    const onClose = () => finish("closed");
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.once("error", onClose);
  });
}
