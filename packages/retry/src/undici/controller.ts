import type { DispatchController } from "./types.js";

/**
 * The controller an interceptor hands to the handler above it: stable for the whole request
 * while the controllers of the attempts below come and go. Pause/resume go to the current
 * attempt; abort is routed to the owner, which knows whether an attempt is live.
 */
export class ForwardingController implements DispatchController {
  #target: DispatchController | null = null;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  readonly #onAbort: ((reason: Error) => void) | undefined;

  /** `onAbort` is called once, on the first `abort()`; a subclass may override {@link onAbort}. */
  constructor(onAbort?: (reason: Error) => void) {
    this.#onAbort = onAbort;
  }

  /** The first `abort()`'s work: the constructor's callback unless overridden. */
  protected onAbort(reason: Error): void {
    this.#onAbort?.(reason);
  }

  /** Points the controller at the current attempt's controller. */
  setTarget(target: DispatchController | null): void {
    this.#target = target;
    if (this.#paused) target?.pause();
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  get rawHeaders(): DispatchController["rawHeaders"] {
    return this.#target?.rawHeaders ?? null;
  }

  get rawTrailers(): DispatchController["rawTrailers"] {
    return this.#target?.rawTrailers ?? null;
  }

  pause(): void {
    this.#paused = true;
    this.#target?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#target?.resume();
  }

  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.onAbort(reason);
  }
}

/** A controller for handlers called before (or without) any attempt's controller. */
export const detachedController = (reason: Error | null): DispatchController => ({
  aborted: reason !== null,
  paused: false,
  reason,
  rawHeaders: null,
  rawTrailers: null,
  abort() {},
  pause() {},
  resume() {},
});
