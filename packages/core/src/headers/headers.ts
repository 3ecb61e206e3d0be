/**
 * Request headers in every shape undici's `dispatch()` accepts: a flat
 * `[name, value, name, value, …]` list (names may be Buffers), a list of `[name, value]`
 * pairs, a plain object (a value may be an array: one field line per element), or any other
 * iterable of pairs such as a `Map` or `Headers`. `undefined`/`null` means no headers.
 */
export type UndiciHeaders =
  | readonly unknown[]
  | Iterable<readonly [string, unknown]>
  | Readonly<Record<string, unknown>>
  | null
  | undefined;

/** Called once per field line by {@link forEachHeader}; `name` is as given (any case). */
export type HeaderVisitor<T> = (name: string, value: string, arg: T) => void;

// Shapes are told apart once per call; none of the reads below allocate unless they copy.
const FLAT = 0;
const PAIRS = 1;
const ITERABLE = 2;
const RECORD = 3;
const NONE = 4;
type Shape = 0 | 1 | 2 | 3 | 4;

function shapeOf(headers: UndiciHeaders): Shape {
  if (headers == null || typeof headers !== "object") return NONE;
  if (Array.isArray(headers)) return headers.length > 0 && Array.isArray(headers[0]) ? PAIRS : FLAT;
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") return ITERABLE;
  return RECORD;
}

/** Whether `key` is `name` (given in lower case) in any case; Buffers compare as latin1. */
export function isHeaderName(key: unknown, name: string): boolean {
  if (typeof key === "string") {
    if (key.length !== name.length) return false;
    for (let i = 0; i < key.length; i++) {
      let c = key.charCodeAt(i);
      if (c >= 65 && c <= 90) c += 32;
      if (c !== name.charCodeAt(i)) return false;
    }
    return true;
  }
  if (Buffer.isBuffer(key))
    return key.length === name.length && isHeaderName(key.toString("latin1"), name);
  return false;
}

const text = (v: unknown): string =>
  typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("latin1") : String(v);

/**
 * Visits every field line: repeated names are visited once per occurrence and an array value
 * once per element, in order; `undefined`/`null` values are skipped. Pass `arg` instead of
 * closing over state to keep the call allocation-free.
 */
export function forEachHeader<T>(headers: UndiciHeaders, visit: HeaderVisitor<T>, arg: T): void {
  switch (shapeOf(headers)) {
    case FLAT: {
      const h = headers as readonly unknown[];
      for (let i = 0; i + 1 < h.length; i += 2) visitValue(text(h[i]), h[i + 1], visit, arg);
      return;
    }
    case PAIRS:
    case ITERABLE:
      for (const pair of headers as Iterable<readonly [unknown, unknown]>) {
        visitValue(text(pair[0]), pair[1], visit, arg);
      }
      return;
    case RECORD: {
      const h = headers as Readonly<Record<string, unknown>>;
      for (const name in h) visitValue(name, h[name], visit, arg);
      return;
    }
  }
}

function visitValue<T>(name: string, value: unknown, visit: HeaderVisitor<T>, arg: T): void {
  if (value == null) return;
  if (Array.isArray(value)) {
    for (const v of value) if (v != null) visit(name, text(v), arg);
  } else visit(name, text(value), arg);
}

/**
 * The first value of header `name` (lower case), or undefined. Repeated headers are kept by
 * every other operation; use {@link getHeaderValues} for all of them.
 */
export function getHeader(headers: UndiciHeaders, name: string): string | undefined {
  switch (shapeOf(headers)) {
    case FLAT: {
      const h = headers as readonly unknown[];
      for (let i = 0; i + 1 < h.length; i += 2) {
        if (isHeaderName(h[i], name)) {
          const v = first(h[i + 1]);
          if (v !== undefined) return v;
        }
      }
      return undefined;
    }
    case PAIRS:
    case ITERABLE:
      for (const pair of headers as Iterable<readonly [unknown, unknown]>) {
        if (isHeaderName(pair[0], name)) {
          const v = first(pair[1]);
          if (v !== undefined) return v;
        }
      }
      return undefined;
    case RECORD: {
      const h = headers as Readonly<Record<string, unknown>>;
      const direct = h[name];
      if (direct !== undefined) return first(direct);
      for (const key in h) if (isHeaderName(key, name)) return first(h[key]);
      return undefined;
    }
    default:
      return undefined;
  }
}

function first(value: unknown): string | undefined {
  if (value == null) return undefined;
  if (Array.isArray(value)) {
    for (const v of value) if (v != null) return text(v);
    return undefined;
  }
  return text(value);
}

/** Every value of header `name` (lower case), in order; empty when absent. */
export function getHeaderValues(headers: UndiciHeaders, name: string): string[] {
  const out: string[] = [];
  forEachHeader(headers, collect, { name, out });
  return out;
}

function collect(key: string, value: string, into: { name: string; out: string[] }): void {
  if (isHeaderName(key, into.name)) into.out.push(value);
}

/** Whether header `name` (lower case) is present with a value. */
export function hasHeader(headers: UndiciHeaders, name: string): boolean {
  return getHeader(headers, name) !== undefined;
}

/**
 * `headers` with every occurrence of `name` (lower case) removed. A flat list stays flat and an
 * object stays an object; a list of pairs or another iterable becomes a flat list (undici
 * reads every array as flat, so that is the list shape it accepts). Never mutates its input;
 * returns `headers` itself when the header is absent.
 */
export function removeHeader<H extends UndiciHeaders>(headers: H, name: string): H {
  switch (shapeOf(headers)) {
    case FLAT: {
      const h = headers as readonly unknown[];
      let i = 0;
      while (i + 1 < h.length && !isHeaderName(h[i], name)) i += 2;
      if (i + 1 >= h.length) return headers;
      const out = h.slice(0, i);
      for (i += 2; i + 1 < h.length; i += 2)
        if (!isHeaderName(h[i], name)) out.push(h[i], h[i + 1]);
      return out as unknown as H;
    }
    case PAIRS:
    case ITERABLE: {
      if (!hasHeader(headers, name)) return headers;
      const out: unknown[] = [];
      for (const pair of headers as Iterable<readonly [unknown, unknown]>) {
        if (!isHeaderName(pair[0], name)) pushFlat(out, pair[0], pair[1]);
      }
      return out as unknown as H;
    }
    case RECORD: {
      const h = headers as Readonly<Record<string, unknown>>;
      let out: Record<string, unknown> | undefined;
      for (const key in h) {
        if (isHeaderName(key, name)) {
          if (out === undefined) {
            out = {};
            for (const k in h) if (!isHeaderName(k, name)) out[k] = h[k];
          }
        }
      }
      return (out ?? headers) as H;
    }
    default:
      return headers;
  }
}

/** What {@link takeHeader} found: the header's first value and the headers without it. */
export interface TakenHeader<H> {
  readonly value: string;
  readonly headers: H;
}

/**
 * Finds header `name` (lower case) and returns its first value with the headers without any
 * occurrence of it, or `undefined` when absent (the common case allocates nothing).
 */
export function takeHeader<H extends UndiciHeaders>(
  headers: H,
  name: string,
): TakenHeader<H> | undefined {
  const value = getHeader(headers, name);
  return value === undefined ? undefined : { value, headers: removeHeader(headers, name) };
}

/**
 * `headers` with one more field line `name: value` appended (repeated names are kept), in the
 * shape undici accepts: a flat list stays flat, a list of pairs or another iterable becomes a
 * flat list, an object gets the value added (as an array when the name is already there, in
 * any case). Never mutates its input.
 */
export function addHeader(headers: UndiciHeaders, name: string, value: string): UndiciHeaders {
  switch (shapeOf(headers)) {
    case FLAT:
      return [...(headers as readonly unknown[]), name, value];
    case PAIRS:
    case ITERABLE: {
      const out: unknown[] = [];
      for (const pair of headers as Iterable<readonly [unknown, unknown]>) {
        pushFlat(out, pair[0], pair[1]);
      }
      out.push(name, value);
      return out;
    }
    case RECORD: {
      const out: Record<string, unknown> = { ...(headers as Readonly<Record<string, unknown>>) };
      const lower = name.toLowerCase();
      for (const key in out) {
        if (isHeaderName(key, lower)) {
          const prev = out[key];
          if (prev != null) {
            out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
            return out;
          }
        }
      }
      out[name] = value;
      return out;
    }
    default:
      return [name, value];
  }
}

/** Appends one `[name, value]` entry to a flat list, an array value as one line per element. */
function pushFlat(out: unknown[], name: unknown, value: unknown): void {
  if (value == null) return;
  if (Array.isArray(value)) {
    for (const v of value) if (v != null) out.push(name, v);
  } else out.push(name, value);
}

/**
 * Removes every `name` (lower case) entry from a flat `[name, value, …]` list the caller owns,
 * in place; when the name is absent (the common case) the list is only read.
 */
export function removeHeaderInPlace(headers: unknown[], name: string): void {
  let w = 0;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const h = headers[i];
    if (isHeaderName(h, name)) continue;
    if (w !== i) {
      headers[w] = h;
      headers[w + 1] = headers[i + 1];
    }
    w += 2;
  }
  if (w !== headers.length) headers.length = w;
}
