import type { Duplex } from "node:stream";
import type { LegacyHandler } from "../../src/index.js";

/** What a legacy handler received for one request. */
export interface LegacyResult {
  statusCode: number;
  statusText: string;
  rawHeaders: Buffer[];
  body: Buffer;
  rawTrailers: Buffer[];
  socket?: Duplex;
}

interface Dispatching {
  dispatch(options: object, handler: object): boolean;
}

/**
 * Sends one request with a hand-written legacy (`onConnect` / `onHeaders` / `onData` /
 * `onComplete` / `onError`) handler, the shape undici 7's own APIs pass to `dispatch()`.
 * `abortOnHeaders` calls the `abort` given to onConnect, without a reason, once headers arrive.
 */
export function legacyRequest(
  dispatcher: Dispatching,
  options: { origin: string; path: string; method?: string; upgrade?: string },
  abortOnHeaders = false,
): Promise<LegacyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const result: LegacyResult = {
      statusCode: 0,
      statusText: "",
      rawHeaders: [],
      body: Buffer.alloc(0),
      rawTrailers: [],
    };
    let abort: ((reason?: Error) => void) | undefined;
    const handler: LegacyHandler = {
      onConnect(a) {
        abort = a;
      },
      onHeaders(statusCode, rawHeaders, _resume, statusText) {
        result.statusCode = statusCode;
        result.statusText = statusText;
        result.rawHeaders = rawHeaders;
        if (abortOnHeaders) abort?.();
        return true;
      },
      onData(chunk) {
        chunks.push(chunk);
        return true;
      },
      onComplete(rawTrailers) {
        result.body = Buffer.concat(chunks);
        result.rawTrailers = rawTrailers;
        resolve(result);
      },
      onUpgrade(statusCode, rawHeaders, socket) {
        result.statusCode = statusCode;
        result.rawHeaders = rawHeaders;
        result.socket = socket;
        resolve(result);
      },
      onError: reject,
    };
    dispatcher.dispatch({ method: "GET", ...options }, handler);
  });
}

/**
 * A raw `[name, value, ...]` list as `[name, value]` string pairs. undici 7's own adapter (in
 * its compose) nests repeated values as a Buffer array; toControllerHandler repeats the name.
 */
export function pairs(raw: Buffer[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString("latin1");
    const value = raw[i + 1] as Buffer | Buffer[];
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v.toString("latin1")]);
  }
  return out;
}
