import {
  getHeader,
  grpcStatusOfHttp,
  isGrpcContentType,
  readGrpcStatus,
  takeHeader,
  toControllerHandler,
  type UndiciHeaders,
} from "@mesh/core";
import { parseGrpcPushback, parseRetryAfter } from "../backoff/backoff.js";
import { attemptChannel, retryChannel, timeoutChannel } from "../events.js";
import { type RetryPolicy, type RetryPolicyOptions, toPolicy } from "../policy/retry-policy.js";
import { PerTryTimeoutError } from "../timeout/errors.js";
import { DownstreamRequest } from "./downstream.js";
import { RETRYABLE_HEADER } from "./headers.js";
import { type BodyReplay, bodyReplay } from "./replay-body.js";
import {
  asInterceptor,
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type DispatchOptions,
  type IncomingHeaders,
  type Interceptor,
} from "./types.js";

/** Options of the {@link retry} interceptor: a {@link RetryPolicy} or its options. */
export type RetryInterceptorOptions = RetryPolicy | RetryPolicyOptions;

/** Bytes of a discarded (retried) response body drained to keep the connection; past this the attempt is aborted. */
const MAX_DRAIN_BYTES = 64 * 1024;

/**
 * An undici interceptor that retries failed requests within a {@link RetryBudget}, with
 * Linkerd's rules: only before any response byte reached the caller, only idempotent methods
 * unless the route (`retryNonIdempotent`) or the request (header `mesh-retryable: true`, or
 * the dispatch option `idempotent: true`) is marked retryable, only when the body could be
 * replayed (≤ `maxReplayBytes`), at most `limit` times, with full-jitter backoff and
 * `Retry-After`.
 *
 * Compose it inside `timeout()` so the request deadline covers every attempt:
 * `agent.compose(circuitBreaker(), retry(), timeout({ request: 2000 }))` (the last one is
 * outermost).
 */
export function retry(options?: RetryInterceptorOptions): Interceptor {
  const policy = toPolicy(options);
  return asInterceptor((dispatch: Dispatch): Dispatch => {
    return function meshRetry(opts: DispatchOptions, handler: DispatchHandler): boolean {
      const downstream = toControllerHandler(handler);
      policy.deposit();
      const marked = takeHeader(opts.headers as UndiciHeaders, RETRYABLE_HEADER);
      if (marked !== undefined) opts = { ...opts, headers: marked.headers as never };
      const eligible = eligibility(policy, opts, marked?.value.trim().toLowerCase());
      if (eligible === Eligible.No && policy.perTryTimeout === undefined) {
        if (attemptChannel.hasSubscribers) publishAttempt(policy, opts, 0);
        return dispatch(opts, downstream);
      }
      return new RetryingRequest(policy, dispatch, opts, downstream, eligible).start();
    };
  });
}

/** Which failures of a request may be retried. */
enum Eligible {
  /** None: the request is sent once. */
  No,
  /** Every condition of the policy (an idempotent method, or marked retryable). */
  All,
  /**
   * Only the policy's gRPC conditions: a gRPC call (always a POST) that its method alone
   * would not make retryable. The service owner listing gRPC codes says they are safe to
   * retry for the service's calls (gRPC's A6 retry policy, Linkerd's gRPC conditions).
   */
  GrpcStatus,
}

function eligibility(
  policy: RetryPolicy,
  opts: DispatchOptions,
  marked: string | undefined,
): Eligible {
  const method = opts.method;
  if (policy.limit === 0 || opts.upgrade || method === "CONNECT" || marked === "false") {
    return Eligible.No;
  }
  if (policy.allowsMethod(method) || marked === "true" || opts.idempotent === true) {
    return Eligible.All;
  }
  if (
    policy.retriesGrpcCalls &&
    isGrpcContentType(getHeader(opts.headers as UndiciHeaders, "content-type"))
  ) {
    return Eligible.GrpcStatus;
  }
  return Eligible.No;
}

function originOf(opts: DispatchOptions): string {
  if (opts.origin === undefined) return "";
  const origin = String(opts.origin);
  return origin.endsWith("/") ? origin.slice(0, -1) : origin;
}

function publishAttempt(policy: RetryPolicy, opts: DispatchOptions, attempt: number): void {
  attemptChannel.publish({
    name: policy.name,
    attempt,
    method: opts.method,
    origin: originOf(opts),
    path: opts.path,
  });
}

type AttemptState = "pending" | "forwarding" | "discarding" | "peeking" | "ended";

/** One request through the retry interceptor, across all its attempts. */
class RetryingRequest extends DownstreamRequest {
  readonly policy: RetryPolicy;
  readonly dispatch: Dispatch;
  readonly opts: DispatchOptions;
  readonly body: BodyReplay | null;
  readonly eligible: Eligible;
  current: Attempt | null = null;
  /** A retry decided and waiting for its backoff and/or the previous attempt to end. */
  next: { attempt: number; timer: NodeJS.Timeout | null } | null = null;

  constructor(
    policy: RetryPolicy,
    dispatch: Dispatch,
    opts: DispatchOptions,
    handler: DispatchHandler,
    eligible: Eligible,
  ) {
    super(handler);
    this.policy = policy;
    this.dispatch = dispatch;
    this.opts = opts;
    this.eligible = eligible;
    this.body = eligible === Eligible.No ? null : bodyReplay(opts.body, policy.maxReplayBytes);
  }

  start(): boolean {
    return this.send(0, true);
  }

  send(n: number, first = false): boolean {
    const attempt = new Attempt(this, n);
    this.current = attempt;
    if (attemptChannel.hasSubscribers) publishAttempt(this.policy, this.opts, n);
    const opts = this.body === null ? this.opts : { ...this.opts, body: this.body.forAttempt() };
    attempt.startTimer();
    if (first) return this.dispatch(opts as DispatchOptions, attempt);
    try {
      return this.dispatch(opts as DispatchOptions, attempt);
    } catch (error) {
      attempt.onResponseError(null, error as Error);
      return true;
    }
  }

  get origin(): string {
    return originOf(this.opts);
  }

  /**
   * Decides on a retry after attempt `from` failed for `reason`; when it goes ahead, the
   * backoff starts now and the next attempt is sent once it elapsed and `from` has ended.
   */
  decide(from: Attempt, reason: string, retryAfterMs: number | undefined): boolean {
    if (this.eligible === Eligible.No || this.done || this.controller.aborted) return false;
    if (this.body !== null && !this.body.replayable) return false;
    const n = from.n + 1;
    const delay = this.policy.delay(n, retryAfterMs);
    if (delay === undefined) return false;
    if (!this.policy.admit(n, reason, this.origin)) return false;
    if (retryChannel.hasSubscribers) {
      retryChannel.publish({
        name: this.policy.name,
        attempt: n,
        reason,
        delayMs: delay,
        origin: this.origin,
      });
    }
    const next: { attempt: number; timer: NodeJS.Timeout | null } = { attempt: n, timer: null };
    this.next = next;
    next.timer = setTimeout(() => {
      next.timer = null;
      // A discarded response still draining is cut short: the retry does not wait for it.
      if (this.current?.state !== "ended") this.current?.discard();
      this.proceed();
    }, delay);
    return true;
  }

  /** Sends the decided retry once its backoff elapsed and the previous attempt ended. */
  proceed(): void {
    const next = this.next;
    if (next === null || next.timer !== null || this.done) return;
    if (this.current !== null && this.current.state !== "ended") return;
    this.next = null;
    this.send(next.attempt);
  }

  commit(): void {
    this.next = null;
  }

  begin(controller: DispatchController, context: unknown): void {
    this.controller.setTarget(controller);
    this.startDownstream(context);
  }

  protected override release(): void {
    if (this.next?.timer) clearTimeout(this.next.timer);
    this.next = null;
    this.body?.close();
  }

  abort(reason: Error): void {
    if (this.done) return;
    const attempt = this.current;
    if (attempt !== null) attempt.cancel(reason);
    this.fail(reason);
  }
}

/** The handler of one attempt, sitting between the dispatcher below and the request. */
class Attempt implements DispatchHandler {
  readonly req: RetryingRequest;
  readonly n: number;
  state: AttemptState = "pending";
  controller: DispatchController | null = null;
  #timer: NodeJS.Timeout | null = null;
  #drained = 0;
  // gRPC response head held back until a message commits it or trailers say to retry.
  #status = 0;
  #headers: IncomingHeaders | null = null;
  #statusText: string | undefined;

  constructor(req: RetryingRequest, n: number) {
    this.req = req;
    this.n = n;
  }

  get live(): boolean {
    return this.req.current === this && this.state !== "ended" && !this.req.done;
  }

  startTimer(): void {
    const ms = this.req.policy.perTryTimeout;
    if (ms === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.live || this.state === "forwarding" || this.state === "discarding") return;
      if (timeoutChannel.hasSubscribers) {
        timeoutChannel.publish({
          name: this.req.policy.name,
          kind: "per-try",
          timeoutMs: ms,
          origin: this.req.origin,
        });
      }
      const error = new PerTryTimeoutError(ms);
      // Stop the attempt below first, then decide as for any error before a response.
      this.cancel(error);
      this.#failed(error);
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /** Ends this attempt from above: later callbacks from below are ignored. */
  cancel(reason: Error): void {
    this.#clearTimer();
    const wasEnded = this.state === "ended";
    this.state = "ended";
    if (!wasEnded) this.controller?.abort(reason);
  }

  /** Stops draining a retried response whose backoff is over. */
  discard(): void {
    this.cancel(new Error("retried response discarded"));
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.controller = controller;
    if (!this.live) {
      controller.abort(this.req.controller.reason ?? new Error("attempt superseded"));
      return;
    }
    this.req.begin(controller, context);
  }

  onResponseStarted(): void {
    if (this.live) this.req.handler.onResponseStarted?.();
  }

  onRequestUpgrade(
    controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    socket: never,
  ): void {
    this.#clearTimer();
    this.state = "forwarding";
    this.req.commit();
    this.req.handler.onRequestUpgrade?.(this.req.controller, status, headers as never, socket);
    void controller;
  }

  onResponseStart(
    _controller: DispatchController,
    status: number,
    headers: IncomingHeaders,
    statusText?: string,
  ): void {
    if (!this.live) return;
    const req = this.req;
    if (status < 200) {
      req.handler.onResponseStart?.(req.controller, status, headers as never, statusText);
      return;
    }
    if (req.eligible !== Eligible.No) {
      const policy = req.policy;
      let reason: string | undefined;
      if (req.eligible === Eligible.All) reason = policy.classifyStatus(status);
      if (reason === undefined && (isGrpc(headers) || req.eligible === Eligible.GrpcStatus)) {
        const code = readGrpcStatus(headers["grpc-status"]) ?? grpcStatusOfHttp(status);
        if (code !== undefined) reason = policy.classifyGrpc(code);
        else if (!policy.grpc.empty && this.#canRetry()) {
          // No status yet: hold the head back until the first message (then the call is
          // committed) or trailers without one (a failure that may still be retried).
          this.state = "peeking";
          this.#status = status;
          this.#headers = headers;
          this.#statusText = statusText;
          return;
        }
      }
      if (reason !== undefined) {
        const pushback = parseGrpcPushback(headers["grpc-retry-pushback-ms"]);
        const retryAfter = pushback ?? parseRetryAfter(headers["retry-after"]);
        if (pushback !== null && req.decide(this, reason, retryAfter)) {
          this.#clearTimer();
          this.state = "discarding";
          return;
        }
      }
    }
    this.#commit(status, headers, statusText);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    switch (this.state) {
      case "forwarding":
        this.req.handler.onResponseData?.(this.req.controller, chunk);
        return;
      case "discarding":
        this.#drained += chunk.length;
        if (this.#drained > MAX_DRAIN_BYTES) {
          this.cancel(new Error("retried response discarded"));
          this.req.proceed();
        }
        return;
      case "peeking":
        // A response message: the call is committed and streams from here on.
        this.#commit(this.#status, this.#headers ?? {}, this.#statusText);
        if (this.live) this.req.handler.onResponseData?.(this.req.controller, chunk);
        return;
      default:
        void controller;
    }
  }

  onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders): void {
    switch (this.state) {
      case "forwarding":
        this.state = "ended";
        this.req.finish(trailers);
        return;
      case "discarding":
        this.state = "ended";
        this.req.proceed();
        return;
      case "peeking": {
        const code = readGrpcStatus(trailers?.["grpc-status"]);
        const reason = code === undefined ? undefined : this.req.policy.classifyGrpc(code);
        const pushback = parseGrpcPushback(trailers?.["grpc-retry-pushback-ms"]);
        if (reason !== undefined && pushback !== null && this.req.decide(this, reason, pushback)) {
          this.#clearTimer();
          this.state = "ended";
          this.req.proceed();
          return;
        }
        this.#commit(this.#status, this.#headers ?? {}, this.#statusText);
        if ((this.state as AttemptState) === "forwarding") {
          this.state = "ended";
          this.req.finish(trailers);
        }
        return;
      }
      default:
    }
  }

  onResponseError(_controller: DispatchController | null, error: Error): void {
    switch (this.state) {
      case "forwarding":
        this.state = "ended";
        this.req.fail(error);
        return;
      case "discarding":
        this.state = "ended";
        this.req.proceed();
        return;
      case "pending":
      case "peeking":
        if (this.req.current !== this) return;
        this.#failed(error);
        return;
      default:
    }
  }

  onBodySent(chunk: Buffer): void {
    if (this.live) this.req.handler.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    if (this.live) this.req.handler.onRequestSent?.();
  }

  /** An error before any response byte reached the caller: retry it or pass it on. */
  #failed(error: Error): void {
    this.#clearTimer();
    this.state = "ended";
    const req = this.req;
    if (req.done) return;
    // A gRPC call retried on its status alone is not retried on errors: after a reset or a
    // timeout nobody knows whether the server acted on it.
    if (!req.controller.aborted && req.eligible === Eligible.All) {
      const reason = req.policy.classifyError(error);
      if (reason !== undefined && req.decide(this, reason, undefined)) {
        req.proceed();
        return;
      }
    }
    req.fail(error);
  }

  #canRetry(): boolean {
    return this.n < this.req.policy.limit && (this.req.body?.replayable ?? true);
  }

  #commit(status: number, headers: IncomingHeaders, statusText: string | undefined): void {
    this.#clearTimer();
    this.state = "forwarding";
    this.req.commit();
    const req = this.req;
    req.handler.onResponseStart?.(req.controller, status, headers as never, statusText);
  }
}

function isGrpc(headers: IncomingHeaders): boolean {
  return isGrpcContentType(headers["content-type"]);
}
