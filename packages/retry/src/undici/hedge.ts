import {
  getHeader,
  isGrpcContentType,
  parseGrpcPushback,
  readGrpcStatus,
  takeHeader,
  toControllerHandler,
  type UndiciHeaders,
} from "@mesh/core";
import {
  attemptChannel,
  budgetExhaustedChannel,
  hedgeChannel,
  hedgeWonChannel,
} from "../events.js";
import { type HedgeOptions, HedgePolicy } from "../hedge/hedge-policy.js";
import { HedgeRace } from "../hedge/hedge-race.js";
import { DownstreamRequest } from "./downstream.js";
import { RETRYABLE_HEADER } from "./headers.js";
import { type BodyReplay, bodyReplay, SameBody } from "./replay-body.js";
import {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type Interceptor,
} from "./types.js";

/** Options of the {@link hedge} interceptor: a {@link HedgePolicy} or its options. */
export type HedgeInterceptorOptions = HedgePolicy | HedgeOptions;

/** Why a losing attempt is cancelled (what its dispatcher sees as the abort reason). */
class HedgeLostError extends Error {
  constructor() {
    super("hedged attempt lost the race");
    this.name = "HedgeLostError";
  }
}

/**
 * An undici interceptor that hedges requests (gRPC A6 hedging, Envoy's per-try hedging):
 * it sends the request, and when no answer arrived within `delay` ms, sends it again to
 * another endpoint (the balancer below picks one), up to `maxAttempts` in all. The first
 * final answer wins and is streamed to the caller; every other attempt is cancelled (undici
 * aborts it: the HTTP/1.1 connection is closed, the HTTP/2 stream reset). Only idempotent
 * requests are hedged (`methods`, a `mesh-retryable: true` header or the dispatch option
 * `idempotent: true`) and gRPC calls to `grpcMethods`; bodies only when held in memory
 * (≤ `maxReplayBytes`). Each hedge is paid from the retry budget: with the budget
 * exhausted no hedge is sent.
 *
 * Put it below the request timeout and above the balancer:
 * `balancer.compose(hedge({ delay: 50 }), timeout({ request: 2000 }))`. Use it instead of
 * `retry()` on a route (A6: a method has a retry or a hedging policy), sharing the budget.
 */
export function hedge(options: HedgeInterceptorOptions): Interceptor {
  const policy = options instanceof HedgePolicy ? options : new HedgePolicy(options);
  return asInterceptor((dispatch: Dispatch): Dispatch => {
    return function meshHedge(opts: DispatchOptions, handler: DispatchHandler): boolean {
      const downstream = toControllerHandler(handler);
      policy.deposit();
      const marked = takeHeader(opts.headers as UndiciHeaders, RETRYABLE_HEADER);
      if (marked !== undefined) opts = { ...opts, headers: marked.headers as never };
      const body = eligibleBody(policy, opts, marked?.value.trim().toLowerCase());
      if (body === false) return dispatch(opts, downstream);
      return new HedgedRequest(policy, dispatch, opts, downstream, body).start();
    };
  });
}

/** The body to send each attempt (`null` for none), or `false` when the request is not hedged. */
function eligibleBody(
  policy: HedgePolicy,
  opts: DispatchOptions,
  marked: string | undefined,
): BodyReplay | null | false {
  if (opts.upgrade || opts.method === "CONNECT" || marked === "false") return false;
  const idempotent =
    policy.methods.has(opts.method) ||
    marked === "true" ||
    opts.idempotent === true ||
    (isGrpcContentType(getHeader(opts.headers as UndiciHeaders, "content-type")) &&
      policy.allowsGrpcMethod(opts.path));
  if (!idempotent) return false;
  const body = bodyReplay(opts.body, policy.maxReplayBytes);
  // Attempts run side by side: only a body every attempt can send whole is hedged.
  if (body === null) return null;
  return body instanceof SameBody && body.replayable ? body : false;
}

function originOf(opts: DispatchOptions): string {
  if (opts.origin === undefined) return "";
  const origin = String(opts.origin);
  return origin.endsWith("/") ? origin.slice(0, -1) : origin;
}

/** One request through the hedge interceptor, across all its attempts. */
class HedgedRequest extends DownstreamRequest {
  readonly policy: HedgePolicy;
  readonly dispatch: Dispatch;
  readonly opts: DispatchOptions;
  readonly race: HedgeRace;
  readonly attempts: HedgeAttempt[] = [];
  timer: NodeJS.Timeout | null = null;

  constructor(
    policy: HedgePolicy,
    dispatch: Dispatch,
    opts: DispatchOptions,
    handler: DispatchHandler,
    body: BodyReplay | null,
  ) {
    super(handler);
    this.policy = policy;
    this.dispatch = dispatch;
    this.opts = body === null ? opts : { ...opts, body: body.forAttempt() as never };
    this.race = new HedgeRace(policy.maxAttempts, policy.budget);
  }

  get origin(): string {
    return originOf(this.opts);
  }

  start(): boolean {
    this.#arm();
    return this.send(0, true);
  }

  send(n: number, first = false): boolean {
    const attempt = new HedgeAttempt(this, n);
    this.attempts.push(attempt);
    if (attemptChannel.hasSubscribers) {
      attemptChannel.publish({
        name: this.policy.name,
        attempt: n,
        method: this.opts.method,
        origin: this.origin,
        path: this.opts.path,
      });
    }
    if (n > 0 && hedgeChannel.hasSubscribers)
      hedgeChannel.publish({ name: this.policy.name, attempt: n, origin: this.origin });
    if (first) return this.dispatch(this.opts, attempt);
    try {
      return this.dispatch(this.opts, attempt);
    } catch (error) {
      attempt.onResponseError(null, error as Error);
      return true;
    }
  }

  /** Starts the hedging delay when another hedge may follow. */
  #arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.race.open || this.done) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.hedgeNow();
    }, this.policy.delay);
  }

  /** Sends the next hedge if the race and the budget allow it. */
  hedgeNow(): void {
    const n = this.race.hedge();
    if (n === -1) {
      this.#reportExhausted();
      return;
    }
    this.send(n);
    this.#arm();
  }

  #reportExhausted(): void {
    if (this.race.exhausted && budgetExhaustedChannel.hasSubscribers)
      budgetExhaustedChannel.publish({
        name: this.policy.name,
        reason: "hedge",
        origin: this.origin,
      });
  }

  /** `winner` answered first: it is forwarded, every other attempt cancelled. */
  win(winner: HedgeAttempt): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.controller.setTarget(winner.controller);
    for (const a of this.attempts) if (a !== winner) a.cancel(new HedgeLostError());
    if (winner.n > 0 && hedgeWonChannel.hasSubscribers)
      hedgeWonChannel.publish({ name: this.policy.name, attempt: winner.n, origin: this.origin });
  }

  /**
   * An attempt ended without a final answer: hedge at once (or after the server's pushback),
   * wait for the others, or answer with it.
   */
  nonFatal(attempt: HedgeAttempt, pushback?: number | null): boolean {
    const step = this.race.nonFatal(attempt.n, pushback);
    if (step === "forward") {
      this.win(attempt);
      return true;
    }
    if (step === "hedge") {
      this.send(this.race.sent - 1);
      this.#arm();
    } else if (step === "wait") {
      // The next attempt is counted and paid; it goes out once the pushback has passed.
      const n = this.race.sent - 1;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.send(n);
        this.#arm();
      }, pushback as number);
    } else this.#reportExhausted();
    return false;
  }

  protected override release(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The caller aborted: every attempt is cancelled. */
  abort(reason: Error): void {
    if (this.done) return;
    for (const a of this.attempts) a.cancel(reason);
    this.fail(reason);
  }
}

/** The handler of one attempt. */
class HedgeAttempt implements DispatchHandler {
  readonly req: HedgedRequest;
  readonly n: number;
  controller: DispatchController | null = null;
  /** "racing" until an answer, then "won" (forwarded) or "out" (cancelled, dropped). */
  state: "racing" | "won" | "out" = "racing";
  #cancelReason: Error | null = null;

  constructor(req: HedgedRequest, n: number) {
    this.req = req;
    this.n = n;
  }

  cancel(reason: Error): void {
    if (this.state !== "racing") return;
    this.state = "out";
    this.#cancelReason = reason;
    this.req.race.ended();
    this.controller?.abort(reason);
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.controller = controller;
    if (this.state === "out") {
      controller.abort(this.#cancelReason ?? new HedgeLostError());
      return;
    }
    this.req.startDownstream(context);
    // The caller's pause reaches whichever attempt wins; before that, every attempt reads.
    if (this.state === "won") this.req.controller.setTarget(controller);
  }

  onResponseStarted(): void {
    if (this.state === "won") this.req.handler.onResponseStarted?.();
  }

  onResponseStart(
    controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    statusText?: string,
  ): void {
    const req = this.req;
    if (this.state === "racing") {
      if (status < 200) return;
      if (this.#nonFatal(status, headers)) {
        if (!req.nonFatal(this, pushbackOf(headers))) {
          this.state = "out";
          controller.abort(new HedgeLostError());
          return;
        }
      } else if (!req.race.final(this.n)) {
        this.state = "out";
        controller.abort(new HedgeLostError());
        return;
      } else req.win(this);
      this.state = "won";
    }
    if (this.state === "won")
      req.handler.onResponseStart?.(req.controller, status, headers as never, statusText);
  }

  #nonFatal(status: number, headers: IncomingHeaders): boolean {
    const policy = this.req.policy;
    if (policy.nonFatalHttp.has(status)) return true;
    if (policy.nonFatalGrpc.empty || !isGrpcContentType(headers["content-type"])) return false;
    const code = readGrpcStatus(headers["grpc-status"]);
    return code !== undefined && policy.nonFatalGrpc.has(code);
  }

  onResponseData(_controller: DispatchController, chunk: Buffer): void {
    if (this.state === "won") this.req.handler.onResponseData?.(this.req.controller, chunk);
  }

  onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders): void {
    if (this.state === "won") this.req.finish(trailers);
  }

  onResponseError(_controller: DispatchController | null, error: Error): void {
    if (this.state === "won") {
      this.req.fail(error);
      return;
    }
    if (this.state === "out" || this.req.done) return;
    // Failed before answering: like a non-fatal answer, unless it is the last one standing.
    this.state = "out";
    if (this.req.nonFatal(this)) {
      this.state = "won";
      this.req.startDownstream(undefined);
      this.req.fail(error);
    }
  }

  onBodySent(chunk: Buffer): void {
    if (this.state === "won") this.req.handler.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    if (this.state === "won") this.req.handler.onRequestSent?.();
  }
}

/** A6: `grpc-retry-pushback-ms` delays the next hedge (`null`: no more hedges). */
function pushbackOf(headers: IncomingHeaders): number | null | undefined {
  const v = headers["grpc-retry-pushback-ms"];
  return v === undefined ? undefined : parseGrpcPushback(v);
}
