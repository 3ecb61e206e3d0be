import type { IncomingMessage } from "node:http";
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

/** Bytes read ahead of the upstream before the client's stream is paused. */
const READ_AHEAD = 64 * 1024;

/** One pending `next()`: its promise and how to settle it. */
class Waiter {
  resolve!: (result: IteratorResult<Buffer>) => void;
  reject!: (err: Error) => void;
  readonly promise = new Promise<IteratorResult<Buffer>>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * The client's request body as the upstream client reads it: an async iterable of its
 * chunks, read ahead up to {@link READ_AHEAD} bytes while the upstream is busy (the source
 * is paused beyond that and resumed as chunks are taken).
 *
 * Not a `Readable`: every consumer (the retry layer's recording, the HTTP/2 client, undici's
 * HTTP/1.1 client) takes an async iterable as it is, and a wrapper stream cost a stream, its
 * state and, in the retry layer, Node's stream async iterator per request — about a sixth of
 * what a unary gRPC call allocated on the outbound.
 *
 * Ending the iteration early (`return()`, which every `for await` and the consumers call when
 * they stop) detaches it and leaves the rest of the client's body unread without destroying
 * the client's stream or connection: the proxy may still have to answer with an error.
 *
 * A body with a `content-length` ends as soon as that many bytes arrived, without waiting
 * for the source's own end (over HTTP/2 that is a separate END_STREAM, often a read later).
 * Otherwise an upstream that answers once it has the whole body can reply before the
 * upstream client saw the body end, and undici's HTTP/1.1 client then closes the
 * connection instead of reusing it: a new connection per request.
 */
export class RequestBody implements AsyncIterableIterator<Buffer> {
  readonly #req: IncomingRequest;
  #queue: Buffer[] = [];
  #queued = 0;
  /** Bytes still expected by `content-length`, or -1 when the source's end decides. */
  #remaining: number;
  #ended = false;
  #detached = false;
  #error: Error | null = null;
  /** Whether this paused the source (read-ahead full); resumed as chunks are taken. */
  #paused = false;
  /** The consumer's pending `next()`, when nothing was queued for it. */
  #waiting: Waiter | null = null;

  constructor(req: IncomingRequest) {
    this.#req = req;
    this.#remaining = declaredLength(req);
    // `content-length: 0`: complete already, no DATA will come to end it.
    if (this.#remaining === 0) {
      this.#ended = true;
      return;
    }
    req.on("data", this.#onData);
    req.on("end", this.#onEnd);
    req.on("error", this.#onError);
    req.on("close", this.#onClose);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      this.#queued -= chunk.length;
      if (this.#paused && this.#queued < READ_AHEAD) this.#resume();
      return Promise.resolve({ done: false, value: chunk });
    }
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#ended || this.#detached) return Promise.resolve(DONE);
    if (this.#paused) this.#resume();
    this.#waiting ??= new Waiter();
    return this.#waiting.promise;
  }

  /** Stops reading: detaches from the client's stream and leaves the rest of it unread. */
  return(): Promise<IteratorResult<Buffer>> {
    if (!this.#detached) {
      this.#detached = true;
      this.#queue = [];
      this.#queued = 0;
      this.#detach();
      // Leave the rest of the client's body unread; the response path decides the
      // connection's fate.
      if (!this.#ended) this.#req.pause();
      // Whoever still waits for a chunk must not take this for the body's end.
      this.#fail(new Error("request body: reading stopped before the body ended"));
    }
    return Promise.resolve(DONE);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#ended) return;
    if (this.#remaining >= 0) {
      this.#remaining -= chunk.length;
      if (this.#remaining <= 0) this.#end();
    }
    if (this.#waiting !== null) {
      this.#settle({ done: false, value: chunk });
      return;
    }
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= READ_AHEAD && !this.#ended) {
      this.#paused = true;
      this.#req.pause();
    }
  };

  readonly #onEnd = (): void => {
    if (!this.#req.complete) {
      this.#onError(new Error("client reset its stream before the request body ended"));
      return;
    }
    if (this.#remaining > 0) {
      this.#onError(
        new Error(
          `client ended the request body ${this.#remaining} bytes short of its content-length`,
        ),
      );
      return;
    }
    this.#end();
    this.#settle(DONE);
  };

  readonly #onError = (err: Error): void => {
    if (this.#ended) return;
    this.#error = err;
    this.#detach();
    this.#fail(err);
  };

  /** Closed without `end` (and without `error`, e.g. a client's RST_STREAM with CANCEL). */
  readonly #onClose = (): void => {
    this.#onError(new Error("client closed the request before its body ended"));
  };

  #resume(): void {
    this.#paused = false;
    this.#req.resume();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#detach();
  }

  #detach(): void {
    this.#req.off("data", this.#onData);
    this.#req.off("end", this.#onEnd);
    this.#req.off("error", this.#onError);
    this.#req.off("close", this.#onClose);
  }

  #settle(result: IteratorResult<Buffer>): void {
    const waiting = this.#waiting;
    if (waiting === null) return;
    this.#waiting = null;
    waiting.resolve(result);
  }

  #fail(err: Error): void {
    const waiting = this.#waiting;
    if (waiting === null) return;
    this.#waiting = null;
    waiting.reject(err);
  }
}
