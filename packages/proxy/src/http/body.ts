import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { H2Exchange } from "./h2-exchange.js";

/** A client request, HTTP/1.1 or HTTP/2. */
export type IncomingRequest = IncomingMessage | H2Exchange;

/** Whether the client request carries a body (without reading it). */
export function hasRequestBody(req: IncomingRequest): boolean {
  if (req instanceof H2Exchange) return req.hasBody;
  const h = req.headers;
  return (
    (h["content-length"] !== undefined && h["content-length"] !== "0") ||
    h["transfer-encoding"] !== undefined
  );
}

/** The declared body length, or -1 when unknown (chunked, or no valid `content-length`). */
function declaredLength(req: IncomingRequest): number {
  const h = req.headers;
  if (h["transfer-encoding"] !== undefined) return -1;
  const v = h["content-length"];
  if (typeof v !== "string" || !/^\d{1,15}$/.test(v)) return -1;
  return Number(v);
}

/**
 * Wraps the client's request body so the upstream client can consume (and on failure
 * destroy) it without tearing down the client connection: the proxy may still have to
 * answer with an error. Back-pressure is kept: the source is paused while the wrapper's
 * buffer is full.
 *
 * A body with a `content-length` ends as soon as that many bytes arrived, without waiting
 * for the source's own end (over HTTP/2 that is a separate END_STREAM, often a read later).
 * Otherwise an upstream that answers once it has the whole body can reply before the
 * upstream client saw the body end, and undici's HTTP/1.1 client then closes the
 * connection instead of reusing it: a new connection per request.
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
  let remaining = declaredLength(req);
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    body.push(null);
  };
  const onData = (chunk: Buffer) => {
    if (ended) return;
    const more = body.push(chunk);
    if (remaining >= 0) {
      remaining -= chunk.length;
      if (remaining <= 0) {
        end();
        return;
      }
    }
    if (!more) req.pause();
  };
  const onEnd = end;
  const onError = (err: Error) => body.destroy(err);
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", onError);
  // `content-length: 0`: complete already, no DATA will come to end it.
  if (remaining === 0) end();
  return body;
}
