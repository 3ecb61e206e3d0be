import type { Dispatcher } from "undici";

/** The pre-controller handler shape that undici 7's `fetch` (Node's global fetch) still passes. */
interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void;
  onHeaders?(
    status: number,
    rawHeaders: Buffer[],
    resume: () => void,
    statusText: string,
  ): boolean | undefined;
  onData?(chunk: Buffer): boolean | undefined;
  onComplete?(rawTrailers: Buffer[] | null): void;
  onError?(error: Error): void;
  onUpgrade?(status: number, rawHeaders: Buffer[], socket: unknown): void;
  onBodySent?(chunk: unknown): void;
  onRequestSent?(): void;
  onResponseStarted?(): void;
}

type Headers = Record<string, string | string[] | undefined>;
type Controller = Dispatcher.DispatchController;

/** True when the handler already speaks the controller-based API shared by undici 7 and 8. */
export function isControllerHandler(handler: object): handler is Dispatcher.DispatchHandler {
  return typeof (handler as Dispatcher.DispatchHandler).onRequestStart === "function";
}

/**
 * Presents a legacy (`onConnect` / `onHeaders` / `onData` / `onComplete` / `onError`) handler
 * as a controller-based one, so undici 8 pools can serve Node's global `fetch` (undici 7).
 */
export class LegacyHandlerAdapter implements Dispatcher.DispatchHandler {
  readonly #h: LegacyHandler;

  constructor(handler: LegacyHandler) {
    this.#h = handler;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.#h.onConnect?.((reason) => controller.abort(reason ?? new Error("aborted")), context);
  }

  onRequestUpgrade(
    controller: Controller,
    status: number,
    headers: Headers,
    socket: unknown,
  ): void {
    this.#h.onUpgrade?.(status, rawList(controller?.rawHeaders, headers), socket);
  }

  onResponseStarted(): void {
    this.#h.onResponseStarted?.();
  }

  onBodySent(chunk: unknown): void {
    this.#h.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    this.#h.onRequestSent?.();
  }

  onResponseStart(
    controller: Controller,
    status: number,
    headers: Headers,
    statusText?: string,
  ): void {
    const resume = () => controller.resume();
    if (
      this.#h.onHeaders?.(
        status,
        rawList(controller?.rawHeaders, headers),
        resume,
        statusText ?? "",
      ) === false
    ) {
      controller.pause();
    }
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#h.onData?.(chunk) === false) controller.pause();
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    this.#h.onComplete?.(rawList(controller?.rawTrailers, trailers));
  }

  onResponseError(_controller: Controller | null, error: Error): void {
    if (!this.#h.onError) throw error;
    this.#h.onError(error);
  }
}

function rawList(raw: unknown, parsed: Headers | null | undefined): Buffer[] {
  if (Array.isArray(raw))
    return raw.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v), "latin1")));
  const out: Buffer[] = [];
  if (!parsed) return out;
  for (const name of Object.keys(parsed)) {
    const value = parsed[name];
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      out.push(Buffer.from(name, "latin1"), Buffer.from(String(v), "latin1"));
    }
  }
  return out;
}
