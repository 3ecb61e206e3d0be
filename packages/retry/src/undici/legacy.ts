import type { Duplex } from "node:stream";
import type { DispatchController, DispatchHandler, IncomingHeaders } from "./types.js";

/** The pre-controller handler API still used by Node 24's bundled fetch (undici 7). */
interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void;
  onHeaders?(status: number, raw: Buffer[], resume: () => void, statusText?: string): boolean;
  onUpgrade?(status: number, raw: Buffer[], socket: Duplex): void;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[]): void;
  onError?(error: Error): void;
  onResponseStarted?(): void;
  onBodySent?(chunk: Buffer): void;
  onRequestSent?(): void;
}

/**
 * Returns a controller-API handler for `handler`. undici 8 no longer adapts handlers written
 * for the older API (as Node 24's global `fetch` passes), so the outermost interceptor does,
 * which lets global `fetch` run over an undici 8 dispatcher composed with these interceptors.
 */
export function toControllerHandler(handler: DispatchHandler): DispatchHandler {
  if (typeof handler.onRequestStart === "function") return handler;
  const h = handler as LegacyHandler;
  if (typeof h.onConnect !== "function" && typeof h.onHeaders !== "function") return handler;
  return new LegacyHandlerAdapter(h);
}

class LegacyHandlerAdapter implements DispatchHandler {
  readonly #h: LegacyHandler;
  constructor(h: LegacyHandler) {
    this.#h = h;
  }
  onRequestStart(controller: DispatchController, context: unknown): void {
    this.#h.onConnect?.((reason) => controller.abort(reason ?? new Error("aborted")), context);
  }
  onRequestUpgrade(
    _controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    socket: Duplex,
  ): void {
    this.#h.onUpgrade?.(status, toRaw(headers), socket);
  }
  onResponseStarted(): void {
    this.#h.onResponseStarted?.();
  }
  onResponseStart(
    controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    statusText?: string,
  ): void {
    const resume = () => controller.resume();
    if (this.#h.onHeaders?.(status, toRaw(headers), resume, statusText) === false) {
      controller.pause();
    }
  }
  onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (this.#h.onData?.(chunk) === false) controller.pause();
  }
  onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders): void {
    this.#h.onComplete?.(toRaw(trailers));
  }
  onResponseError(_controller: DispatchController, error: Error): void {
    if (!this.#h.onError) throw error;
    this.#h.onError(error);
  }
  onBodySent(chunk: Buffer): void {
    this.#h.onBodySent?.(chunk);
  }
  onRequestSent(): void {
    this.#h.onRequestSent?.();
  }
}

function toRaw(headers: IncomingHeaders | null | undefined): Buffer[] {
  const raw: Buffer[] = [];
  if (!headers) return raw;
  for (const key of Object.keys(headers)) {
    const value = headers[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const v of value) raw.push(Buffer.from(key, "latin1"), Buffer.from(v, "latin1"));
    } else {
      raw.push(Buffer.from(key, "latin1"), Buffer.from(String(value), "latin1"));
    }
  }
  return raw;
}
