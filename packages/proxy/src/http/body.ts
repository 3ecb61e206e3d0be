import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Readable } from "node:stream";

/** A client request, HTTP/1.1 or HTTP/2. */
export type IncomingRequest = IncomingMessage | Http2ServerRequest;

/** Whether the client request carries a body (without reading it). */
export function hasRequestBody(req: IncomingRequest): boolean {
  const stream = (req as Http2ServerRequest).stream;
  if (stream !== undefined) return !stream.endAfterHeaders && !req.readableEnded;
  const h = req.headers;
  return (
    (h["content-length"] !== undefined && h["content-length"] !== "0") ||
    h["transfer-encoding"] !== undefined
  );
}

/**
 * Wraps the client's request body so the upstream client can consume (and on failure
 * destroy) it without tearing down the client connection: the proxy may still have to
 * answer with an error. Back-pressure is kept: the source is paused while the wrapper's
 * buffer is full.
 */
export function requestBody(req: IncomingRequest): Readable {
  const body = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      req.resume();
    },
    destroy(err, cb) {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      // Leave the rest of the client's body unread; the response path decides the connection's fate.
      req.pause();
      cb(err);
    },
  });
  const onData = (chunk: Buffer) => {
    if (!body.push(chunk)) req.pause();
  };
  const onEnd = () => body.push(null);
  const onError = (err: Error) => body.destroy(err);
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", onError);
  return body;
}
