import type { Duplex } from "node:stream";
import { duration, optionsObject } from "@mesh/core";
import { decodeTransportHeader, type TransportHeader, TransportHeaderError } from "./header.js";

/** Options of {@link readTransportHeader}. @public */
export interface ReadTransportHeaderOptions {
  /** Fail with `MESH_TRANSPORT_HEADER_TIMEOUT` if the header is not complete in time. Default 10 000. */
  timeoutMs?: number;
}

/**
 * Reads exactly one transport header off the start of a stream (a TLS socket after mTLS
 * termination) and leaves everything after it unread: the stream is paused and any extra
 * bytes are put back with `unshift`, so a forwarder sees the payload from its first byte.
 *
 * Rejects with {@link TransportHeaderError}: `INVALID` as soon as a bad byte arrives,
 * `TRUNCATED` when the stream ends or fails first, `TIMEOUT` after `timeoutMs`. The stream
 * is not destroyed on failure; the caller decides (usually `destroy()`).
 *
 * @public
 */
export function readTransportHeader(
  stream: Duplex,
  options?: ReadTransportHeaderOptions,
): Promise<TransportHeader> {
  const o = optionsObject("options", options);
  const timeoutMs = duration("options.timeoutMs", o.timeoutMs, 10_000, 1);
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const cleanup = () => {
      done = true;
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onEnd);
      stream.off("close", onEnd);
      stream.pause();
    };
    const fail = (err: TransportHeaderError) => {
      if (done) return;
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let decoded: ReturnType<typeof decodeTransportHeader>;
      try {
        decoded = decodeTransportHeader(buf);
      } catch (err) {
        fail(err as TransportHeaderError);
        return;
      }
      if (!decoded) return;
      cleanup();
      if (decoded.length < buf.length) stream.unshift(buf.subarray(decoded.length));
      resolve(decoded.header);
    };
    const onEnd = () =>
      fail(
        new TransportHeaderError(
          "MESH_TRANSPORT_HEADER_TRUNCATED",
          buf.length,
          `transport header truncated: the stream ended after ${buf.length} bytes`,
        ),
      );
    const timer = setTimeout(
      () =>
        fail(
          new TransportHeaderError(
            "MESH_TRANSPORT_HEADER_TIMEOUT",
            buf.length,
            `transport header not received within ${timeoutMs} ms (${buf.length} bytes arrived)`,
          ),
        ),
      timeoutMs,
    );
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("error", onEnd);
    stream.once("close", onEnd);
    // Paused by an earlier reader (a sniffer, the TLS handoff): start reading.
    stream.resume();
  });
}
