import {
  addHeader,
  type Clock,
  duration,
  hasHeader,
  integerIn,
  monotonicClock,
  type OptionNames,
  optionsObject,
  toControllerHandler,
  typeError,
  type UndiciHeaders,
} from "@mesh/core";
import { Dispatcher, Pool } from "undici";
import type { Resolver } from "../discovery/resolver.js";
import type { Endpoint, EndpointInfo, EndpointInit } from "../endpoints/endpoint.js";
import {
  EndpointSet,
  type EndpointSetOptions,
  type EndpointSnapshot,
  type ZoneSnapshot,
} from "../endpoints/endpoint-set.js";
import { BalancerClosedError, EndpointOverloadedError, NoEndpointsReadyError } from "../errors.js";
import { type EndpointState, failFastChannel } from "../events.js";
import { EndpointRequest } from "./endpoint-request.js";
import { Http2Client, type Http2ClientOptions } from "./h2-client.js";
import { destroyArgs, promiseOrCallback } from "./lifecycle.js";

/** Options for {@link Balancer}. */
export interface BalancerOptions extends Omit<EndpointSetOptions, "onStateChange"> {
  /** A fixed endpoint list or a {@link Resolver} (DNS, file, ...). May be empty and filled later with `update()`. */
  endpoints?: readonly (EndpointInit | string)[] | Resolver;
  /** How long a request waits for a ready endpoint before failing with {@link NoEndpointsReadyError}. Default 3 000 ms. */
  failFastMs?: number;
  /** Requests that may wait for a ready endpoint at once; beyond that they fail fast immediately. Default 10 000. */
  maxWaiting?: number;
  /**
   * Requests one endpoint may have in flight or queued in its pool. A request whose chosen
   * endpoint is at the limit fails at once with {@link EndpointOverloadedError} instead of
   * queueing without bound (Linkerd bounds its endpoint queues the same way). Pair it with
   * `pool.connections` to bound sockets too. Default: no limit.
   */
  maxPendingPerEndpoint?: number;
  /** Options for each endpoint's undici `Pool` (connections, pipelining, timeouts, default `connect`). */
  pool?: Pool.Options;
  /** Builds the dispatcher for one endpoint instead of an undici `Pool` (e.g. to add interceptors). */
  factory?: (origin: string, options: Pool.Options, endpoint: EndpointInfo) => Dispatcher;
  /**
   * Send the request's own authority (`host` / `:authority`) rather than the endpoint's
   * address, as a mesh does. Default true.
   */
  preserveHost?: boolean;
  /** Called when the resolver reports an error or yields an invalid set (the last good set stays). */
  onResolverError?: (error: Error) => void;
}

/** A point-in-time view of a balancer, for admin pages. */
export interface BalancerSnapshot {
  name: string;
  strategy: string;
  closed: boolean;
  /** Endpoints ready for traffic. */
  ready: number;
  /** Requests waiting for a ready endpoint. */
  waiting: number;
  endpoints: EndpointSnapshot[];
  resolver?: { source: string; updates: number; lastError?: string };
  /** Zone-local balancing state, present when `localZone` is set. */
  zone?: ZoneSnapshot;
}

interface Waiter {
  opts: Dispatcher.DispatchOptions;
  handler: Dispatcher.DispatchHandler;
  since: number;
}

/** Every option {@link Balancer} accepts (its own and the endpoint set's). */
const BALANCER_OPTIONS: OptionNames = {
  known: [
    "name",
    "endpoints",
    "strategy",
    "ewma",
    "failureRate",
    "accrual",
    "pushback",
    "localZone",
    "localZoneMaxPending",
    "failFastMs",
    "maxWaiting",
    "maxPendingPerEndpoint",
    "pool",
    "factory",
    "preserveHost",
    "onResolverError",
    "clock",
    "random",
  ],
  // undici's Pool options belong under `pool`.
  hints: { connections: "pool.connections", pipelining: "pool.pipelining" },
};

/**
 * Endpoints that speak HTTP/2 get an {@link Http2Client} (node:http2; undici 8.13's own h2
 * client drops DATA still buffered when trailers arrive), the others an undici `Pool`.
 */
function defaultFactory(origin: string, options: Pool.Options, info: EndpointInfo): Dispatcher {
  if (info.protocol !== "h2") return new Pool(origin, options);
  return new Http2Client(origin, {
    connect: options.connect as Http2ClientOptions["connect"],
    connectTimeout: options.connectTimeout as number | undefined,
  });
}

/**
 * An undici `Dispatcher` that balances requests over a live set of endpoints with
 * power-of-two-choices over Peak-EWMA cost, ejects endpoints by failure accrual, and follows a
 * {@link Resolver}. Each endpoint gets its own undici `Pool`, an {@link Http2Client} for `protocol: "h2"` endpoints, or what `factory` builds.
 * Works as `fetch(url, { dispatcher })` with undici 7 and 8 and Node's global `fetch`.
 *
 * @example
 * const balancer = new Balancer({ endpoints: ["10.0.0.1:8080", "10.0.0.2:8080"] });
 * const res = await fetch("http://api.internal/users", { dispatcher: balancer });
 */

export class Balancer extends Dispatcher {
  /** Name used in events and errors. */
  readonly name: string;
  readonly #set: EndpointSet;
  readonly #clock: Clock;
  readonly #failFastMs: number;
  readonly #maxWaiting: number;
  readonly #maxPendingPerEndpoint: number;
  readonly #poolOptions: Pool.Options;
  readonly #factory: NonNullable<BalancerOptions["factory"]>;
  readonly #preserveHost: boolean;
  readonly #onResolverError: BalancerOptions["onResolverError"];
  readonly #closing = new Map<Endpoint, Promise<void>>();
  readonly #hosts = new Map<string, string>();
  #waiters: Waiter[] = [];
  #timer: NodeJS.Timeout | undefined;
  #serveScheduled = false;
  #closed = false;
  #resolver: { source: string; updates: number; lastError?: string } | undefined;
  #iterator: AsyncIterator<unknown> | undefined;

  constructor(options: BalancerOptions = {}) {
    super();
    if (options === null || typeof options !== "object")
      throw typeError("options", "an object", options);
    optionsObject("Balancer", options, BALANCER_OPTIONS);
    this.#clock = options.clock ?? monotonicClock;
    this.#set = new EndpointSet({
      ...options,
      clock: this.#clock,
      onStateChange: (endpoint, state) => this.#onStateChange(endpoint, state),
    });
    this.name = this.#set.name;
    this.#failFastMs = duration("failFastMs", options.failFastMs, 3_000, 0);
    this.#maxWaiting = integerIn("maxWaiting", options.maxWaiting, 10_000, 0, 10_000_000);
    this.#maxPendingPerEndpoint = integerIn(
      "maxPendingPerEndpoint",
      options.maxPendingPerEndpoint,
      Number.MAX_SAFE_INTEGER,
      1,
      Number.MAX_SAFE_INTEGER,
    );
    if (options.pool !== undefined && (options.pool === null || typeof options.pool !== "object")) {
      throw typeError("pool", "undici Pool options", options.pool);
    }
    this.#poolOptions = options.pool ?? {};
    if (options.factory !== undefined && typeof options.factory !== "function") {
      throw typeError("factory", "a function", options.factory);
    }
    this.#factory = options.factory ?? defaultFactory;
    if (options.preserveHost !== undefined && typeof options.preserveHost !== "boolean") {
      throw typeError("preserveHost", "a boolean", options.preserveHost);
    }
    this.#preserveHost = options.preserveHost ?? true;
    this.#onResolverError = options.onResolverError;
    const endpoints = options.endpoints;
    if (Array.isArray(endpoints)) {
      this.#set.update(endpoints);
    } else if (endpoints !== undefined) {
      if (
        endpoints === null ||
        typeof (endpoints as Resolver)[Symbol.asyncIterator] !== "function"
      ) {
        throw typeError("endpoints", "an array of endpoints or a Resolver", endpoints);
      }
      this.#follow(endpoints as Resolver);
    }
  }

  /** The pure core: endpoint set, load estimates, accrual and `pick()`. */
  get endpoints(): EndpointSet {
    return this.#set;
  }

  /** Replaces the endpoint set (new ones added, missing ones drained). With a resolver, its next update wins. */
  update(endpoints: readonly (EndpointInit | string)[]): void {
    this.#set.update(endpoints);
  }

  /** Adds or updates one endpoint. */
  add(endpoint: EndpointInit | string): void {
    this.#set.add(endpoint);
  }

  /** Drains and removes one endpoint; requests in flight finish first. */
  remove(address: string): boolean {
    return this.#set.remove(address);
  }

  /** Changes an endpoint's weight live. */
  setWeight(address: string, weight: number): void {
    this.#set.setWeight(address, weight);
  }

  /** Endpoint states, costs and pending counts, plus resolver status. */
  snapshot(): BalancerSnapshot {
    const s: BalancerSnapshot = {
      name: this.name,
      strategy: this.#set.selector.name,
      closed: this.#closed,
      ready: this.#set.readyCount,
      waiting: this.#waiters.length,
      endpoints: this.#set.snapshot(),
    };
    if (this.#resolver) s.resolver = { ...this.#resolver };
    const zone = this.#set.zone;
    if (zone) s.zone = zone;
    return s;
  }

  override dispatch(
    opts: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): boolean {
    if (!handler || typeof handler !== "object")
      throw typeError("handler", "a dispatch handler", handler);
    // Node 24's global fetch (undici 7) passes a legacy handler; undici 8 pools need the controller API.
    const h: Dispatcher.DispatchHandler = toControllerHandler(handler);
    if (this.#closed) {
      h.onResponseError?.(null as never, new BalancerClosedError(this.name));
      return true;
    }
    const now = this.#clock.now();
    const endpoint = this.#set.pick(now);
    if (endpoint) {
      // P2C chose the cheaper of two: at the limit, this one's queue is full.
      if (endpoint.pending >= this.#maxPendingPerEndpoint) {
        h.onResponseError?.(
          null as never,
          new EndpointOverloadedError(this.name, endpoint.info.address, endpoint.pending),
        );
      } else this.#send(endpoint, opts, h, now);
    } else if (this.#waiters.length >= this.#maxWaiting || this.#failFastMs === 0) {
      this.#failFast(h, 0);
    } else {
      this.#waiters.push({ opts, handler: h, since: now });
      this.#arm();
    }
    return true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    return promiseOrCallback(this.#shutdown(null), callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const { err, callback } = destroyArgs(a, b);
    return promiseOrCallback(this.#shutdown(err ?? new BalancerClosedError(this.name)), callback);
  }

  async #shutdown(destroyWith: Error | null): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      void this.#iterator?.return?.();
      if (this.#timer) clearTimeout(this.#timer);
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters)
        w.handler.onResponseError?.(null as never, new BalancerClosedError(this.name));
      const live = [...this.#set.endpoints()];
      this.#set.clear();
      if (destroyWith) {
        for (const e of live) {
          const d = e.resource as Dispatcher | undefined;
          if (d && !this.#closing.has(e))
            this.#closing.set(
              e,
              d.destroy(destroyWith).catch(() => {}),
            );
        }
      }
      // Pools of endpoints still draining close once their last request answers; close()
      // on the pool itself then waits for response bodies in flight.
      for (const e of live) this.#closePool(e, true);
    }
    await Promise.all(this.#closing.values());
  }

  #follow(resolver: Resolver): void {
    this.#resolver = { source: String(resolver.source ?? "custom"), updates: 0 };
    const iterator = resolver[Symbol.asyncIterator]();
    this.#iterator = iterator;
    const report = (error: Error) => {
      this.#resolver!.lastError = error.message;
      this.#onResolverError?.(error);
    };
    const loop = async () => {
      for (;;) {
        const { value, done } = await iterator.next();
        if (done || this.#closed) return;
        if (value.type === "error") {
          report(value.error);
          continue;
        }
        try {
          this.#set.update(value.endpoints);
          this.#resolver!.updates++;
          delete this.#resolver!.lastError;
        } catch (err) {
          report(err as Error);
        }
      }
    };
    loop().catch((err: unknown) => report(err instanceof Error ? err : new Error(String(err))));
  }

  #send(
    endpoint: Endpoint,
    opts: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
    now: number,
  ): void {
    let dispatcher = endpoint.resource as Dispatcher | undefined;
    if (dispatcher === undefined) {
      dispatcher = this.#createDispatcher(endpoint.info);
      endpoint.resource = dispatcher;
    }
    this.#set.start(endpoint);
    dispatcher.dispatch(
      this.#rewrite(opts, endpoint.info.origin),
      new EndpointRequest(this.#set, endpoint, handler, this.#clock, now),
    );
  }

  #createDispatcher(info: EndpointInfo): Dispatcher {
    const options: Pool.Options = { ...this.#poolOptions };
    if (info.connect !== undefined) options.connect = info.connect as Pool.Options["connect"];
    if (info.protocol === "h2") {
      options.allowH2 = true;
      if (!info.tls) (options as { useH2c?: boolean }).useH2c = true;
    } else if (info.protocol === "http1") {
      options.allowH2 = false;
    }
    return this.#factory(info.origin, options, info);
  }

  #rewrite(opts: Dispatcher.DispatchOptions, origin: string): Dispatcher.DispatchOptions {
    const requested = opts.origin;
    if (!this.#preserveHost || requested == null) return { ...opts, origin };
    const key = typeof requested === "string" ? requested : requested.origin;
    let host = this.#hosts.get(key);
    if (host === undefined) {
      host = new URL(key).host;
      if (this.#hosts.size > 256) this.#hosts.clear();
      this.#hosts.set(key, host);
    }
    return { ...opts, origin, headers: withHost(opts.headers, host) };
  }

  #onStateChange(endpoint: Endpoint, state: EndpointState): void {
    if (state === "removed") this.#closePool(endpoint);
    else if ((state === "ready" || state === "ejected") && this.#waiters.length > 0)
      this.#scheduleServe();
  }

  #closePool(endpoint: Endpoint, force = false): void {
    if (endpoint.state !== "removed" && !force) return;
    const d = endpoint.resource as Dispatcher | undefined;
    if (!d || this.#closing.has(endpoint)) return;
    const p = d.close().catch(() => {});
    this.#closing.set(endpoint, p);
    p.then(() => this.#closing.delete(endpoint));
  }

  #scheduleServe(): void {
    if (this.#serveScheduled) return;
    this.#serveScheduled = true;
    queueMicrotask(() => {
      this.#serveScheduled = false;
      this.#serve();
    });
  }

  /** Sends waiting requests to endpoints that became ready, fails those past the deadline. */
  #serve(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const waiters = this.#waiters;
    let i = 0;
    for (; i < waiters.length; i++) {
      const w = waiters[i]!;
      const now = this.#clock.now();
      if (now - w.since >= this.#failFastMs) {
        this.#failFast(w.handler, now - w.since);
        continue;
      }
      const endpoint = this.#set.pick(now);
      if (!endpoint) break;
      this.#send(endpoint, w.opts, w.handler, now);
    }
    this.#waiters = i === 0 ? waiters : waiters.slice(i);
    this.#arm();
  }

  #arm(): void {
    if (this.#timer || this.#waiters.length === 0 || this.#closed) return;
    const now = this.#clock.now();
    const deadline = this.#waiters[0]!.since + this.#failFastMs;
    const wake = Math.min(deadline, this.#set.nextProbeAt);
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#serve();
      },
      Math.max(0, Math.ceil(wake - now)),
    );
    this.#timer.unref?.();
  }

  #failFast(handler: Dispatcher.DispatchHandler, waitedMs: number): void {
    if (failFastChannel.hasSubscribers) failFastChannel.publish({ balancer: this.name, waitedMs });
    handler.onResponseError?.(null as never, new NoEndpointsReadyError(this.name, waitedMs));
  }
}

/** Adds `host` unless the caller already set one; never mutates the caller's headers. */
function withHost(
  headers: Dispatcher.DispatchOptions["headers"],
  host: string,
): Dispatcher.DispatchOptions["headers"] {
  const h = headers as UndiciHeaders;
  return (
    hasHeader(h, "host") ? h : addHeader(h, "host", host)
  ) as Dispatcher.DispatchOptions["headers"];
}
