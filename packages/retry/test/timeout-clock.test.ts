import { getHeader, meshChannels } from "@mesh/core";
import fc from "fast-check";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import {
  IdleTimeoutError,
  RequestTimeoutError,
  type TimeoutOptions,
  type TimeoutTimers,
  timeout,
} from "../src/index.js";
import type { DispatchController, DispatchHandler, DispatchOptions } from "../src/undici/types.js";
import { collect } from "./support/events.js";
import { http1Server, type TestServer } from "./support/servers.js";

/** A clock and timers the test moves by hand: `advance()` fires what falls due, in order. */
class FakeTime implements TimeoutTimers {
  t = 0;
  #seq = 0;
  readonly pending = new Map<
    number,
    { at: number; callback: (arg: never) => void; arg: unknown }
  >();
  /** Every callback ever scheduled (to see that they are shared, not per request). */
  readonly callbacks: unknown[] = [];
  now(): number {
    return this.t;
  }
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg: A): unknown {
    const id = ++this.#seq;
    this.pending.set(id, { at: this.t + ms, callback: callback as (arg: never) => void, arg });
    this.callbacks.push(callback);
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; callback: (arg: never) => void; arg: unknown }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.pending.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].callback(next[1].arg as never);
    }
    this.t = end;
  }
}

/**
 * The dispatcher below `timeout()`, scripted by the test: time here is the fake clock's, which
 * no real socket can follow. Real-socket behaviour is covered in timeouts.test.ts and below.
 */
class Exchange implements DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  handler: DispatchHandler | undefined;
  abort(reason: Error): void {
    this.aborted = true;
    this.reason = reason;
    this.handler?.onResponseError?.(this, reason);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

/** What the caller above saw. */
interface Seen {
  controller?: DispatchController;
  error?: Error;
  ended?: boolean;
  chunks: number;
}

function harness(options: TimeoutOptions, time: FakeTime) {
  const below: { opts: DispatchOptions; exchange: Exchange }[] = [];
  const dispatch = (opts: DispatchOptions, handler: DispatchHandler): boolean => {
    const exchange = new Exchange();
    exchange.handler = handler;
    below.push({ opts, exchange });
    return true;
  };
  const interceptor = timeout({ clock: time, timers: time, ...options }) as unknown as (
    d: typeof dispatch,
  ) => typeof dispatch;
  const send = (headers: Record<string, string> = {}) => {
    const seen: Seen = { chunks: 0 };
    const handler: DispatchHandler = {
      onRequestStart: (c) => {
        seen.controller = c;
      },
      onResponseStart: () => {},
      onResponseData: () => {
        seen.chunks++;
      },
      onResponseEnd: () => {
        seen.ended = true;
      },
      onResponseError: (_c, err) => {
        seen.error = err;
      },
    };
    interceptor(dispatch)({ origin: "http://a", path: "/", method: "GET", headers }, handler);
    return seen;
  };
  /** Starts the latest request's attempt and its response head. */
  const respond = () => {
    const { exchange } = below.at(-1)!;
    exchange.handler!.onRequestStart!(exchange, {});
    exchange.handler!.onResponseStart!(exchange, 200, {}, "");
    return exchange;
  };
  return { send, respond, below };
}

const fromHeader = (opts: DispatchOptions) => {
  const v = getHeader(opts.headers as never, "x-deadline-ms");
  return v === undefined ? undefined : Number(v);
};

describe("timeout({ deadline }): a per-request deadline", () => {
  it("the earlier of the request's own deadline and `request` wins; none falls back", () => {
    const time = new FakeTime();
    const h = harness({ request: 500, deadline: fromHeader }, time);
    const short = h.send({ "x-deadline-ms": "100" });
    const long = h.send({ "x-deadline-ms": "5000" });
    const none = h.send();
    time.advance(99);
    expect(short.error).toBeUndefined();
    time.advance(1);
    expect(short.error).toBeInstanceOf(RequestTimeoutError);
    expect(short.error).toMatchObject({ timeoutMs: 100 });
    time.advance(399);
    expect([long.error, none.error]).toEqual([undefined, undefined]);
    time.advance(1);
    expect(long.error).toMatchObject({ code: "MESH_RETRY_REQUEST_TIMEOUT", timeoutMs: 500 });
    expect(none.error).toMatchObject({ code: "MESH_RETRY_REQUEST_TIMEOUT", timeoutMs: 500 });
  });

  it("without `request`, only requests that carry a deadline are timed", () => {
    const time = new FakeTime();
    const h = harness({ deadline: fromHeader }, time);
    const timed = h.send({ "x-deadline-ms": "50" });
    const untimed = h.send();
    expect(time.pending.size).toBe(1);
    time.advance(1_000_000);
    expect(timed.error).toBeInstanceOf(RequestTimeoutError);
    expect(untimed.error).toBeUndefined();
  });

  it("a deadline already past fails the request without dispatching it", async () => {
    const time = new FakeTime();
    const h = harness({ request: 500, deadline: fromHeader }, time);
    const late = h.send({ "x-deadline-ms": "-3" });
    await Promise.resolve();
    expect(h.below).toHaveLength(0);
    expect(late.error).toMatchObject({ code: "MESH_RETRY_REQUEST_TIMEOUT", timeoutMs: 0 });
  });

  it("validates the option", () => {
    expect(() => timeout({ deadline: 100 as never })).toThrow(
      "timeout.deadline: expected a function (opts) => ms | undefined, got 100",
    );
  });

  it("property: the request fails at min(request, own deadline) unless it ended first", () => {
    const ownDeadline = fc.oneof(
      fc.constant(undefined),
      fc.integer({ min: -10, max: 2_000 }),
      fc.constant(Number.NaN),
    );
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 1, max: 1_000 }), { nil: undefined }),
        ownDeadline,
        fc.integer({ min: 0, max: 2_500 }),
        (requestMs, own, endAt) => {
          const time = new FakeTime();
          const h = harness(
            { ...(requestMs === undefined ? {} : { request: requestMs }), deadline: () => own },
            time,
          );
          const seen = h.send();
          const candidates = [requestMs, Number.isNaN(own) ? undefined : own].filter(
            (x): x is number => x !== undefined,
          );
          const effective = candidates.length === 0 ? undefined : Math.min(...candidates);
          if (effective !== undefined && effective <= 0) {
            // Never dispatched; fails on the next microtask (checked above), nothing is armed.
            expect(h.below).toHaveLength(0);
            expect(time.pending.size).toBe(0);
            return;
          }
          const exchange = h.respond();
          time.advance(endAt);
          if (seen.error === undefined) exchange.handler!.onResponseEnd!(exchange, {});
          if (effective !== undefined && effective <= endAt) {
            expect(seen.error).toBeInstanceOf(RequestTimeoutError);
            expect((seen.error as RequestTimeoutError).timeoutMs).toBe(effective);
            expect(exchange.aborted).toBe(true);
          } else {
            expect(seen.error).toBeUndefined();
            expect(seen.ended).toBe(true);
          }
          expect(time.pending.size).toBe(0);
        },
      ),
    );
  });
});

describe("timeout({ idle }) on an injected clock", () => {
  it("property: fails exactly when the body was quiet, not paused, for the idle time", () => {
    // Each gap between chunks: quiet `before`, optionally paused for `paused` ms then quiet
    // `after` (resuming restarts the quiet time).
    const gap = fc.record({
      before: fc.integer({ min: 0, max: 300 }),
      paused: fc.option(fc.integer({ min: 0, max: 1_000 }), { nil: undefined }),
      after: fc.integer({ min: 0, max: 300 }),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 250 }),
        fc.array(gap, { maxLength: 8 }),
        (idle, gaps) => {
          const time = new FakeTime();
          const h = harness({ idle }, time);
          const seen = h.send();
          const exchange = h.respond();
          const controller = seen.controller as DispatchController;
          let expectIdle = false;
          for (const g of gaps) {
            time.advance(g.before);
            if (g.before >= idle) expectIdle = true;
            if (expectIdle) break;
            if (g.paused !== undefined) {
              controller.pause();
              time.advance(g.paused);
              controller.resume();
              time.advance(g.after);
              if (g.after >= idle) expectIdle = true;
              if (expectIdle) break;
            }
            exchange.handler!.onResponseData!(exchange, Buffer.from("x"));
          }
          if (expectIdle) {
            expect(seen.error).toBeInstanceOf(IdleTimeoutError);
            expect((seen.error as IdleTimeoutError).timeoutMs).toBe(idle);
          } else {
            expect(seen.error).toBeUndefined();
            exchange.handler!.onResponseEnd!(exchange, {});
            expect(seen.ended).toBe(true);
          }
          expect(time.pending.size).toBe(0);
        },
      ),
    );
  });

  it("arms shared callbacks (no closure per request) and body chunks arm no timer", () => {
    const time = new FakeTime();
    const h = harness({ request: 10_000, idle: 1_000 }, time);
    for (let i = 0; i < 3; i++) {
      h.send();
      const exchange = h.respond();
      for (let c = 0; c < 100; c++) {
        time.advance(5);
        exchange.handler!.onResponseData!(exchange, Buffer.from("x"));
      }
      exchange.handler!.onResponseEnd!(exchange, {});
    }
    // Per request: the deadline and one idle timer; 100 chunks added none.
    expect(time.callbacks).toHaveLength(6);
    expect(new Set(time.callbacks).size).toBe(2);
    expect(time.pending.size).toBe(0);
  });
});

describe("timeout({ deadline }) over a real socket", () => {
  let server: TestServer | undefined;
  const agent = new Agent();
  afterEach(async () => {
    await server?.close();
  });

  it("a deadline read from the request's headers ends a hanging request with its own value", async () => {
    server = await http1Server(() => {});
    const events = collect([meshChannels.retry.timeout]);
    const err = await request(server.origin, {
      headers: { "x-deadline-ms": "50" },
      dispatcher: agent.compose(timeout({ request: 60_000, deadline: fromHeader, name: "books" })),
    }).catch((e: unknown) => e);
    events.stop();
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect(err).toMatchObject({ timeoutMs: 50 });
    expect(events.events.map((e) => e.message)).toEqual([
      { name: "books", kind: "request", timeoutMs: 50, origin: server.origin },
    ]);
  });
});
