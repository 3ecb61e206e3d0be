import { ForwardingController } from "./controller.js";
import type { DispatchHandler, IncomingHeaders } from "./types.js";

/**
 * What a request spread over several attempts owes the handler above it, whatever the
 * attempts are (retries, hedges): one stable controller, `onRequestStart` once, and exactly
 * one terminal callback (end or error).
 */
export abstract class DownstreamRequest {
  readonly handler: DispatchHandler;
  readonly controller: ForwardingController;
  /** The downstream handler got onRequestStart. */
  started = false;
  /** A terminal callback (end or error) reached the downstream handler. */
  done = false;

  constructor(handler: DispatchHandler) {
    this.handler = handler;
    this.controller = new ForwardingController((reason) => this.abort(reason));
  }

  /** The caller (or an outer interceptor) aborted through our controller. */
  abstract abort(reason: Error): void;

  /** Releases timers and buffers when the request fails; the default holds none. */
  protected release(): void {}

  /** Calls the downstream `onRequestStart` the first time only. */
  startDownstream(context: unknown): void {
    if (this.started) return;
    this.started = true;
    this.handler.onRequestStart?.(this.controller, context);
  }

  finish(trailers: IncomingHeaders): void {
    if (this.done) return;
    this.done = true;
    this.handler.onResponseEnd?.(this.controller, trailers as never);
  }

  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.handler.onResponseError?.(this.controller, error);
  }
}
