import type { Readable } from "node:stream";

/** What a request body allows: sent as is each time, replayed from a recording, or sent once. */
export type BodyReplay = SameBody | RecordedBody | OnceBody;

/** Bodies held in memory (string, bytes, Blob): every attempt sends the same object. */
export class SameBody {
  readonly #body: unknown;
  readonly replayable: boolean;
  constructor(body: unknown, replayable: boolean) {
    this.#body = body;
    this.replayable = replayable;
  }
  forAttempt(): unknown {
    return this.#body;
  }
  close(): void {}
}

/** Bodies that cannot be replayed (FormData, unknown types): sent once, never retried. */
export class OnceBody {
  readonly #body: unknown;
  readonly replayable = false;
  constructor(body: unknown) {
    this.#body = body;
  }
  forAttempt(): unknown {
    return this.#body;
  }
  close(): void {}
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * A streamed body (Readable, ReadableStream, async iterable — what `fetch` sends) read once
 * from its source and recorded while it is sent, up to `max` bytes. Each attempt gets its own
 * iterator that first replays what was recorded, then continues reading the source. Past
 * `max` the recording is dropped and the body is no longer replayable; an error from the
 * source also makes it unreplayable.
 */
export class RecordedBody {
  readonly #source: AsyncIterator<unknown>;
  readonly #max: number;
  #chunks: Buffer[] = [];
  /** Sequence number of `#chunks[0]`. */
  #base = 0;
  #bytes = 0;
  #overflowed = false;
  #ended = false;
  #error: unknown = null;
  #pending: Promise<void> | null = null;
  /** Iterators of older attempts stop yielding once a newer attempt starts. */
  #generation = 0;

  constructor(source: AsyncIterable<unknown>, max: number) {
    this.#source = source[Symbol.asyncIterator]();
    this.#max = max;
  }

  get replayable(): boolean {
    return !this.#overflowed && this.#error === null;
  }

  /** A fresh iterable for the next attempt. */
  forAttempt(): AsyncIterable<Buffer> {
    const generation = ++this.#generation;
    /** Sequence number of the next chunk this attempt sends. */
    let sent = 0;
    // Not an async function: one chunk, recorded or just read, is one settled promise.
    const next = (): Promise<IteratorResult<Buffer>> => {
      if (generation !== this.#generation) return Promise.resolve(DONE);
      const k = sent - this.#base;
      if (k < 0) {
        return Promise.reject(new Error("request body was not recorded and cannot be replayed"));
      }
      if (k < this.#chunks.length) {
        const chunk = this.#chunks[k]!;
        sent++;
        if (this.#overflowed) {
          // Nothing will be replayed: keep no more than what is still unsent.
          this.#chunks.splice(0, k + 1);
          this.#base = sent;
        }
        return Promise.resolve({ done: false, value: chunk });
      }
      if (this.#error !== null) return Promise.reject(this.#error);
      if (this.#ended) return Promise.resolve(DONE);
      return this.#pull().then(next);
    };
    const iterator: AsyncIterator<Buffer> & AsyncIterable<Buffer> = {
      next,
      // undici ends iteration early when an attempt fails; the source must stay open for the
      // next attempt, so only this attempt's iterator stops.
      return: async (): Promise<IteratorResult<Buffer>> => {
        if (generation === this.#generation) this.#generation++;
        return DONE;
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Releases the source when the request is over. */
  close(): void {
    this.#generation++;
    if (!this.#ended) {
      this.#ended = true;
      this.#chunks = [];
      this.#source.return?.().catch(() => {});
    }
  }

  #pull(): Promise<void> {
    this.#pending ??= this.#source.next().then(
      (result) => {
        this.#pending = null;
        if (result.done) {
          this.#ended = true;
          return;
        }
        const chunk = toBuffer(result.value);
        this.#chunks.push(chunk);
        this.#bytes += chunk.length;
        if (!this.#overflowed && this.#bytes > this.#max) this.#overflowed = true;
      },
      (error: unknown) => {
        this.#pending = null;
        this.#error = error ?? new Error("request body failed");
      },
    );
    return this.#pending;
  }
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "string") return Buffer.from(value);
  if (ArrayBuffer.isView(value))
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  throw new TypeError(`request body chunk: expected bytes or a string, got ${typeof value}`);
}

/** Classifies a dispatch body for replay, with `max` bytes of recording allowed. */
export function bodyReplay(body: unknown, max: number): BodyReplay | null {
  if (body == null) return null;
  if (typeof body === "string") return new SameBody(body, Buffer.byteLength(body) <= max);
  if (ArrayBuffer.isView(body)) return new SameBody(body, body.byteLength <= max);
  if (typeof Blob !== "undefined" && body instanceof Blob) {
    return new SameBody(body, body.size <= max);
  }
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") {
    return new RecordedBody(body as AsyncIterable<unknown> | Readable, max);
  }
  return new OnceBody(body);
}
