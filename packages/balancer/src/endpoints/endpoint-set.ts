import { type Clock, monotonicClock, numberIn, type Outcome, typeError } from "@mesh/core";
import {
  FailureAccrual,
  type FailureAccrualConfig,
  type FailureAccrualOptions,
  failureAccrualConfig,
  penaltyMs,
} from "../accrual/failure-accrual.js";
import { type EndpointState, endpointChannel, zoneChannel } from "../events.js";
import {
  FailureRate,
  type FailureRateConfig,
  type FailureRateOptions,
  failureRateConfig,
} from "../ewma/failure-rate.js";
import {
  PeakEwma,
  type PeakEwmaConfig,
  type PeakEwmaOptions,
  peakEwmaConfig,
} from "../ewma/peak-ewma.js";
import { type PushbackConfig, type PushbackOptions, pushbackConfig } from "../pushback/pushback.js";
import type { Random } from "../random.js";
import { createSelector, type Selector, STRATEGIES, type Strategy } from "../select/selector.js";
import {
  Endpoint,
  type EndpointInfo,
  type EndpointInit,
  endpointInfo,
  sameEndpointInit,
} from "./endpoint.js";

/** Options for {@link EndpointSet}. */
export interface EndpointSetOptions {
  /** Name used in events and snapshots. Default `"default"`. */
  name?: string;
  /** Selection strategy or a custom {@link Selector}. Default `"p2c"`. */
  strategy?: Strategy | Selector;
  /** Peak-EWMA settings. */
  ewma?: PeakEwmaOptions;
  /**
   * Failure-rate settings: `decayMs` (default 5 s), `prior` (10 pseudo-successes),
   * `failureCostFactor` (15; cost is multiplied by `exp(factor × rate)`, 0 disables).
   */
  failureRate?: FailureRateOptions;
  /** Failure accrual settings, or `false` to never eject. */
  accrual?: FailureAccrualOptions | false;
  /**
   * Pushback: an endpoint whose response asks to back off (`Retry-After`,
   * `grpc-retry-pushback-ms`) costs `costFactor` (1000) times more for that long, capped at
   * `maxMs` (10 s); `false` ignores pushback.
   */
  pushback?: PushbackOptions | false;
  /**
   * Zone-local balancing: the zone this client runs in. When set, each pick chooses among the
   * ready endpoints whose `zone` equals it, and spills over to all ready endpoints while the
   * local zone has none ready or is overloaded (see `localZoneMaxPending`). Default: off.
   */
  localZone?: string;
  /**
   * The local zone counts as overloaded while its ready endpoints average more than this many
   * requests awaiting response headers (from this balancer). Default 10. Only with `localZone`.
   */
  localZoneMaxPending?: number;
  /** Time source (ms). Default `performance.now()`. */
  clock?: Clock;
  /** Randomness for P2C and jitter. Default `Math.random`; use `seededRandom(n)` in tests. */
  random?: Random;
  /** Called after an endpoint changes state (after the event is published). */
  onStateChange?: (endpoint: Endpoint, state: EndpointState, reason: string) => void;
}

/** Zone-local balancing state (when `localZone` is set). */
export interface ZoneSnapshot {
  /** The local zone. */
  local: string;
  /** Ready endpoints in the local zone. */
  ready: number;
  /** Requests awaiting response headers from them. */
  pending: number;
  /** True while picks spill over to every ready endpoint (no local endpoint ready, or overloaded). */
  spillover: boolean;
}

/** A point-in-time view of one endpoint. */
export interface EndpointSnapshot {
  address: string;
  origin: string;
  state: EndpointState;
  weight: number;
  pending: number;
  /** Cost as P2C sees it: rttMs × (pending + 1) × exp(failureCostFactor × failureRate) / weight. */
  cost: number;
  /** Current Peak-EWMA RTT estimate, ms. */
  rttMs: number;
  /** Time-decayed failure rate in [0, 1] (with the prior's pseudo-successes). */
  failureRate: number;
  consecutiveFailures: number;
  /** Milliseconds until the next probe when ejected, or the next recheck when in an outage. */
  probeInMs?: number;
  /** Milliseconds the endpoint stays pushed back (it answered with `Retry-After` / `grpc-retry-pushback-ms`). */
  pushbackInMs?: number;
  requests: number;
  failures: number;
  identity?: string;
  protocol?: string;
  zone?: string;
  labels?: Readonly<Record<string, string>>;
}

/**
 * The pure core of the balancer: a live set of endpoints with their load estimates and failure
 * accrual, and a cheap {@link EndpointSet.pick}. Owns no sockets and no timers; time comes
 * from the clock. Adapters call {@link EndpointSet.start}, {@link EndpointSet.responded} and
 * {@link EndpointSet.settled} around each request.
 */
export class EndpointSet {
  /** Name used in events. */
  readonly name: string;
  /** The selector in use. */
  readonly selector: Selector;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #ewma: PeakEwmaConfig;
  readonly #failureRate: FailureRateConfig;
  readonly #accrual: FailureAccrualConfig | undefined;
  readonly #pushback: PushbackConfig;
  /** Failure accrual's probe backoff, also that of rechecks (the defaults when accrual is off). */
  readonly #recheck: FailureAccrualConfig;
  readonly #onStateChange: EndpointSetOptions["onStateChange"];
  readonly #all = new Map<string, Endpoint>();
  readonly #ready: Endpoint[] = [];
  readonly #ejected: Endpoint[] = [];
  /** Ready endpoints whose last exchange failed: each gets a recheck probe if avoided. */
  readonly #failing: Endpoint[] = [];
  #nextProbeAt = Number.POSITIVE_INFINITY;
  readonly #localZone: string | undefined;
  readonly #localMaxPending: number;
  /** Ready endpoints of the local zone; undefined when zone-local balancing is off. */
  readonly #local: Endpoint[] | undefined;
  /** Sum of `pending` over {@link EndpointSet.#local}. */
  #localPending = 0;
  #spilling = false;

  constructor(options: EndpointSetOptions = {}) {
    if (options === null || typeof options !== "object")
      throw typeError("options", "an object", options);
    const name = options.name ?? "default";
    if (typeof name !== "string" || name.length === 0)
      throw typeError("name", "a non-empty string", name);
    this.name = name;
    this.#clock = options.clock ?? monotonicClock;
    if (typeof this.#clock?.now !== "function")
      throw typeError("clock", "an object with now()", options.clock);
    this.#random = options.random ?? Math.random;
    if (typeof this.#random !== "function")
      throw typeError("random", "a function returning [0, 1)", options.random);
    this.#ewma = peakEwmaConfig(options.ewma);
    this.#failureRate = failureRateConfig(options.failureRate);
    this.#accrual = options.accrual === false ? undefined : failureAccrualConfig(options.accrual);
    this.#recheck = this.#accrual ?? failureAccrualConfig(undefined);
    this.#pushback = pushbackConfig(options.pushback);
    const strategy = options.strategy ?? "p2c";
    if (typeof strategy === "string") {
      if (!STRATEGIES.includes(strategy))
        throw typeError("strategy", STRATEGIES.map((s) => `"${s}"`).join(" | "), strategy);
      this.selector = createSelector(strategy, this.#random);
    } else if (strategy && typeof strategy.pick === "function") {
      this.selector = strategy;
    } else {
      throw typeError("strategy", "a strategy name or a Selector", strategy);
    }
    this.#onStateChange = options.onStateChange;
    if (
      options.localZone !== undefined &&
      (typeof options.localZone !== "string" || options.localZone.length === 0)
    ) {
      throw typeError("localZone", "a non-empty string", options.localZone);
    }
    this.#localZone = options.localZone;
    this.#local = options.localZone === undefined ? undefined : [];
    this.#localMaxPending = numberIn(
      "localZoneMaxPending",
      options.localZoneMaxPending,
      10,
      0,
      1_000_000,
    );
  }

  /** Number of endpoints currently ready for traffic. */
  get readyCount(): number {
    return this.#ready.length;
  }

  /** Number of endpoints known (including ejected and draining). */
  get size(): number {
    return this.#all.size;
  }

  /** Zone-local balancing state, or `undefined` when `localZone` is not set. */
  get zone(): ZoneSnapshot | undefined {
    const local = this.#local;
    if (local === undefined) return undefined;
    return {
      local: this.#localZone!,
      ready: local.length,
      pending: this.#localPending,
      spillover: this.#overloaded(local.length),
    };
  }

  /**
   * Earliest time (ms) an ejected endpoint may be probed, or an avoided one rechecked;
   * `Infinity` when none. May be early (then `pick()` finds nothing due and moves it on).
   */
  get nextProbeAt(): number {
    return this.#nextProbeAt;
  }

  /** Looks an endpoint up by address (`host:port`) or origin. */
  get(address: string): Endpoint | undefined {
    return this.#all.get(address) ?? this.#all.get(endpointInfo(address).origin);
  }

  /** All endpoints, including draining ones. */
  endpoints(): IterableIterator<Endpoint> {
    return this.#all.values();
  }

  /**
   * Replaces the set with `inits`: new endpoints are added, known ones get their new weight and
   * metadata, missing ones start draining. Validates everything before changing anything.
   */
  update(inits: readonly (EndpointInit | string)[]): void {
    if (!Array.isArray(inits)) throw typeError("endpoints", "an array of endpoints", inits);
    const infos = new Map<string, EndpointInfo>();
    inits.forEach((init, i) => {
      // A resolver sends the whole set on every change (Kubernetes: 10 slice updates/s of a
      // 1000-endpoint Service); endpoints it sends unchanged keep their metadata object
      // instead of a URL parse and a fresh object each (which would turn over 1000 long-lived
      // objects per update for the old-generation GC to collect).
      const address = typeof init === "string" ? init : init?.address;
      const known = typeof address === "string" ? this.#all.get(`http://${address}`) : undefined;
      const info =
        known !== undefined && sameEndpointInit(known.info, init)
          ? known.info
          : endpointInfo(init, `endpoints[${i}]`);
      infos.set(info.origin, info);
    });
    for (const [origin, endpoint] of this.#all) {
      if (!infos.has(origin) && endpoint.state !== "draining") this.#drain(endpoint, "removed");
    }
    for (const info of infos.values()) this.#upsert(info);
  }

  /** Adds an endpoint (or updates it when the address is known). */
  add(init: EndpointInit | string): Endpoint {
    return this.#upsert(endpointInfo(init, "endpoint"));
  }

  /** Starts draining an endpoint: no new requests; removed once in-flight ones finish. */
  remove(address: string): boolean {
    const endpoint = this.get(address);
    if (!endpoint || endpoint.state === "draining") return false;
    this.#drain(endpoint, "removed");
    return true;
  }

  /** Changes an endpoint's weight live. */
  setWeight(address: string, weight: number): void {
    const endpoint = this.get(address);
    if (!endpoint) throw typeError("address", "a known endpoint", address);
    endpoint.setInfo(
      endpointInfo({ ...endpoint.info, address: endpoint.info.origin, weight }, "endpoint"),
    );
  }

  /**
   * Chooses an endpoint for the next request, or `undefined` when none is ready. A due probe of
   * an ejected endpoint takes precedence (one request), and so does a due recheck of a ready
   * endpoint whose last exchange failed and that got no request since (one request,
   * `minPenaltyMs` plus jitter after that failure), so recovery does not depend on luck or on
   * how long the failure cost takes to decay.
   * With `localZone`, the choice is among the local zone's ready endpoints unless it has none
   * or is overloaded; then among all ready endpoints.
   */
  pick(now = this.#clock.now()): Endpoint | undefined {
    if (now >= this.#nextProbeAt) {
      const probe = this.#takeProbe(now);
      if (probe) return probe;
    }
    const local = this.#local;
    if (local !== undefined) {
      const n = local.length;
      const spill = this.#overloaded(n);
      if (spill !== this.#spilling) this.#zoneChanged(spill, n);
      if (!spill) return n > 1 ? this.selector.pick(local, now) : local[0];
    }
    const ready = this.#ready;
    if (ready.length > 1) return this.selector.pick(ready, now);
    return ready[0];
  }

  /** Records that a request was sent to `endpoint`. */
  start(endpoint: Endpoint): void {
    // A request in flight to a failing endpoint will say how it is: no recheck meanwhile.
    if (endpoint.failingIndex !== -1) endpoint.recheckAt = Number.POSITIVE_INFINITY;
    if (endpoint.localIndex !== -1) this.#localPending++;
    endpoint.pending++;
    endpoint.requests++;
  }

  /**
   * Records the response (headers) or an error before one: the round trip feeds Peak-EWMA, the
   * same for failures as for successes, and the request stops counting as pending. Whether it
   * failed is told by {@link settled}.
   */
  responded(endpoint: Endpoint, rttMs: number, now = this.#clock.now()): void {
    if (endpoint.localIndex !== -1) this.#localPending--;
    endpoint.pending--;
    endpoint.load.observe(rttMs, now);
    if (endpoint.pending === 0 && endpoint.state === "draining") this.#finishDrain(endpoint);
  }

  /**
   * Records the final outcome of an exchange: successes and failures feed the failure rate
   * (`neutral`, e.g. an abort by the caller, feeds nothing) and failure accrual. A ready
   * endpoint in an outage (failing since it was last healthy) is rechecked if it gets no
   * request for accrual's penalty; a success after a recheck ends the outage and restores it
   * as a successful accrual probe does.
   */
  settled(endpoint: Endpoint, outcome: Outcome, now = this.#clock.now()): void {
    /** A success ends an outage: the failures before it were one run after a healthy time. */
    let outage = false;
    if (outcome === "failure") {
      endpoint.failures++;
      endpoint.failureRate.observe(true, now);
    } else if (outcome === "success") {
      outage = endpoint.failureRate.inOutage(now);
      if (endpoint.rechecks > 0 && outage) this.#restore(endpoint, now);
      endpoint.failureRate.observe(false, now);
    }
    this.#accrue(endpoint, outcome, now, outage);
    if (endpoint.readyIndex === -1) return;
    if (outcome === "success") {
      if (endpoint.failingIndex !== -1) this.#removeFailing(endpoint);
    } else if (endpoint.failureRate.inOutage(now)) {
      this.#armRecheck(endpoint, now);
    } else if (endpoint.failingIndex !== -1) {
      this.#removeFailing(endpoint);
    }
  }

  /**
   * The endpoint asked its clients to stay away for `delayMs` (a `Retry-After` or
   * `grpc-retry-pushback-ms` it answered with): its cost is multiplied by
   * `pushback.costFactor` until `now + min(delayMs, pushback.maxMs)`, so P2C sends it
   * traffic only when the other choice is worse still. A longer pushback already in force
   * is kept.
   */
  pushback(endpoint: Endpoint, delayMs: number, now = this.#clock.now()): void {
    const ms = Math.min(delayMs, this.#pushback.maxMs);
    if (!(ms > 0)) return;
    endpoint.pushbackFactor = this.#pushback.costFactor;
    if (now + ms > endpoint.pushbackUntil) endpoint.pushbackUntil = now + ms;
  }

  /**
   * Failure accrual's part of {@link EndpointSet.settled}: ejection, probes, restoration.
   * `outage`: the success ends an outage (see {@link FailureRate.inOutage}).
   */
  #accrue(endpoint: Endpoint, outcome: Outcome, now: number, outage: boolean): void {
    const accrual = endpoint.accrual;
    if (!accrual || endpoint.state === "draining" || endpoint.state === "removed") return;
    if (outcome === "success") {
      if (accrual.success(now)) {
        if (endpoint.state === "ejected") this.#removeEjected(endpoint);
        // A success-rate ejection of an endpoint that fails every few requests (not an
        // outage) is not undone by one good answer: it keeps the failure cost it earned, so
        // P2C keeps steering away until it behaves (the cost decays with failureRate.decayMs
        // and is diluted by its successes). An outage ended, or a consecutive-failures
        // ejection, is forgotten so the endpoint competes at once (issue 16's bound).
        if (accrual.reason === "success-rate" && !outage) this.#restoreLoad(endpoint, now);
        else this.#restore(endpoint, now);
        this.#becomeReady(endpoint, endpoint.state === "probing" ? "probe-succeeded" : "success");
      }
    } else if (outcome === "failure") {
      const wasProbing = accrual.state === "probing";
      if (accrual.failure(now)) {
        this.#removeReady(endpoint);
        this.#ejected.push(endpoint);
        if (accrual.probeAt < this.#nextProbeAt) this.#nextProbeAt = accrual.probeAt;
        this.#setState(endpoint, "ejected", wasProbing ? "probe-failed" : accrual.reason);
      }
    } else if (accrual.state === "probing") {
      accrual.probeInconclusive(now);
      this.#ejected.push(endpoint);
      this.#nextProbeAt = now;
      this.#setState(endpoint, "ejected", "probe-inconclusive");
    }
  }

  /** Drains every endpoint (used on close). */
  clear(): void {
    for (const endpoint of this.#all.values()) {
      if (endpoint.state !== "draining") this.#drain(endpoint, "closed");
    }
  }

  /** A point-in-time view of every endpoint. */
  snapshot(now = this.#clock.now()): EndpointSnapshot[] {
    const out: EndpointSnapshot[] = [];
    for (const e of this.#all.values()) {
      const s: EndpointSnapshot = {
        address: e.address,
        origin: e.info.origin,
        state: e.state,
        weight: e.weight,
        pending: e.pending,
        cost: e.cost(now),
        rttMs: e.load.estimate(now),
        failureRate: e.failureRate.rate(now),
        consecutiveFailures: e.accrual?.consecutiveFailures ?? 0,
        requests: e.requests,
        failures: e.failures,
      };
      if (now < e.pushbackUntil) s.pushbackInMs = e.pushbackUntil - now;
      if (e.state === "ejected" && e.accrual) s.probeInMs = Math.max(0, e.accrual.probeAt - now);
      else if (e.failingIndex !== -1 && e.recheckAt !== Number.POSITIVE_INFINITY)
        s.probeInMs = Math.max(0, e.recheckAt - now);
      if (e.info.identity) s.identity = e.info.identity;
      if (e.info.protocol) s.protocol = e.info.protocol;
      if (e.info.zone) s.zone = e.info.zone;
      if (e.info.labels) s.labels = e.info.labels;
      out.push(s);
    }
    return out;
  }

  #upsert(info: EndpointInfo): Endpoint {
    const known = this.#all.get(info.origin);
    if (known) {
      known.setInfo(info);
      if (known.readyIndex !== -1) this.#syncLocal(known);
      if (known.state === "draining") {
        // Re-added before it finished draining: serve it again, keep its connections.
        if (known.accrual && known.accrual.state !== "ready") {
          this.#ejected.push(known);
          if (known.accrual.probeAt < this.#nextProbeAt) this.#nextProbeAt = known.accrual.probeAt;
          this.#setState(known, "ejected", "added");
        } else {
          this.#becomeReady(known, "added");
        }
      }
      return known;
    }
    const now = this.#clock.now();
    const endpoint = new Endpoint(
      info,
      new PeakEwma(now, this.#ewma),
      this.#accrual ? new FailureAccrual(this.#accrual, this.#random) : undefined,
      new FailureRate(now, this.#failureRate),
    );
    this.#all.set(info.origin, endpoint);
    this.#becomeReady(endpoint, "added");
    return endpoint;
  }

  #drain(endpoint: Endpoint, reason: string): void {
    this.#removeReady(endpoint);
    this.#removeEjected(endpoint);
    this.#setState(endpoint, "draining", reason);
    if (endpoint.pending === 0) this.#finishDrain(endpoint);
  }

  #finishDrain(endpoint: Endpoint): void {
    this.#all.delete(endpoint.info.origin);
    this.#setState(endpoint, "removed", "drained");
  }

  #takeProbe(now: number): Endpoint | undefined {
    let due: Endpoint | undefined;
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.#ejected) {
      const at = e.accrual!.probeAt;
      if (!due && at <= now) due = e;
      else if (at < next) next = at;
    }
    let recheck: Endpoint | undefined;
    for (const e of this.#failing) {
      const at = e.recheckAt;
      if (!due && !recheck && at <= now) recheck = e;
      else if (at < next) next = at;
    }
    this.#nextProbeAt = next;
    if (due) {
      this.#removeEjected(due);
      due.accrual!.startProbe();
      this.#setState(due, "probing", "probe-due");
      return due;
    }
    if (recheck) {
      // Still ready (P2C may pick it too); start() holds further rechecks while it is in flight.
      recheck.recheckAt = Number.POSITIVE_INFINITY;
      recheck.rechecks++;
    }
    return recheck;
  }

  /**
   * An outage ended (a probe or recheck succeeded): the outage's failures and round trips are
   * forgotten; the estimate starts from the round trip of the request that just succeeded
   * rather than the default RTT, so the endpoint competes at once on what it measures now.
   */
  #restore(endpoint: Endpoint, now: number): void {
    this.#restoreLoad(endpoint, now);
    endpoint.failureRate.reset(now);
  }

  /** The RTT estimate starts from the round trip of the request that just succeeded. */
  #restoreLoad(endpoint: Endpoint, now: number): void {
    endpoint.load.reset(now, endpoint.load.lastSampleMs);
  }

  /**
   * A ready endpoint in an outage (its last exchanges failed, it was healthy before) is due a
   * recheck if it gets no request for accrual's penalty, as when P2C avoids it for its failure
   * cost: `minPenaltyMs` plus jitter, doubling with each recheck of the outage.
   */
  #armRecheck(endpoint: Endpoint, now: number): void {
    if (endpoint.failingIndex === -1) {
      endpoint.failingIndex = this.#failing.length;
      this.#failing.push(endpoint);
    }
    const at = now + penaltyMs(this.#recheck, endpoint.rechecks, this.#random);
    endpoint.recheckAt = at;
    if (at < this.#nextProbeAt) this.#nextProbeAt = at;
  }

  #removeFailing(endpoint: Endpoint): void {
    const i = endpoint.failingIndex;
    const last = this.#failing.pop()!;
    if (last !== endpoint) {
      this.#failing[i] = last;
      last.failingIndex = i;
    }
    endpoint.failingIndex = -1;
    endpoint.recheckAt = Number.POSITIVE_INFINITY;
    endpoint.rechecks = 0;
  }

  #becomeReady(endpoint: Endpoint, reason: string): void {
    if (endpoint.readyIndex === -1) {
      endpoint.readyIndex = this.#ready.length;
      this.#ready.push(endpoint);
    }
    this.#syncLocal(endpoint);
    this.#setState(endpoint, "ready", reason);
  }

  /** Puts a ready endpoint in the local zone's list, or takes it out, after its zone is known. */
  #syncLocal(endpoint: Endpoint): void {
    const local = this.#local;
    if (local === undefined) return;
    const isLocal = endpoint.readyIndex !== -1 && endpoint.info.zone === this.#localZone;
    if (isLocal && endpoint.localIndex === -1) {
      endpoint.localIndex = local.length;
      local.push(endpoint);
      this.#localPending += endpoint.pending;
    } else if (!isLocal && endpoint.localIndex !== -1) {
      this.#removeLocal(endpoint);
    }
  }

  #removeLocal(endpoint: Endpoint): void {
    const local = this.#local!;
    const i = endpoint.localIndex;
    const last = local.pop()!;
    if (last !== endpoint) {
      local[i] = last;
      last.localIndex = i;
    }
    endpoint.localIndex = -1;
    this.#localPending -= endpoint.pending;
  }

  /** Whether picks spill over: no local endpoint ready, or their average pending above the limit. */
  #overloaded(localReady: number): boolean {
    return localReady === 0 || this.#localPending > this.#localMaxPending * localReady;
  }

  #zoneChanged(spill: boolean, localReady: number): void {
    this.#spilling = spill;
    if (!zoneChannel.hasSubscribers) return;
    zoneChannel.publish({
      balancer: this.name,
      zone: this.#localZone!,
      state: spill ? "spillover" : "local",
      reason: spill ? (localReady === 0 ? "no-local-endpoint" : "overloaded") : "recovered",
      localReady,
      localPending: this.#localPending,
    });
  }

  #removeReady(endpoint: Endpoint): void {
    if (endpoint.localIndex !== -1) this.#removeLocal(endpoint);
    if (endpoint.failingIndex !== -1) this.#removeFailing(endpoint);
    const i = endpoint.readyIndex;
    if (i === -1) return;
    const last = this.#ready.pop()!;
    if (last !== endpoint) {
      this.#ready[i] = last;
      last.readyIndex = i;
    }
    endpoint.readyIndex = -1;
  }

  #removeEjected(endpoint: Endpoint): void {
    const i = this.#ejected.indexOf(endpoint);
    if (i !== -1) this.#ejected.splice(i, 1);
  }

  #setState(endpoint: Endpoint, state: EndpointState, reason: string): void {
    endpoint.state = state;
    if (endpointChannel.hasSubscribers) {
      endpointChannel.publish({
        balancer: this.name,
        address: endpoint.address,
        state,
        reason,
        cost: endpoint.cost(this.#clock.now()),
        pending: endpoint.pending,
      });
    }
    this.#onStateChange?.(endpoint, state, reason);
  }
}
