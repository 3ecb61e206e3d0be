import { numberIn, typeError } from "@mesh/core";
import type { FailureAccrual } from "../accrual/failure-accrual.js";
import type { EndpointState } from "../events.js";
import { FailureRate } from "../ewma/failure-rate.js";
import type { PeakEwma } from "../ewma/peak-ewma.js";
import { type ParsedAddress, parseAddress } from "./address.js";

/** Which HTTP version to speak to an endpoint. `h2` enables HTTP/2 (h2c over plain TCP). */
export type ProtocolHint = "http1" | "h2";

/**
 * How to connect to one endpoint: undici `connect` options (TLS `ca`/`cert`/`key`,
 * `servername`, `rejectUnauthorized`, timeouts ...) or a custom connector function.
 * This is where mTLS plugs in.
 */
export type EndpointConnect = Record<string, unknown> | ((...args: never[]) => unknown);

/** An endpoint as discovery describes it. */
export interface EndpointInit {
  /** `host:port`, `[v6]:port`, or an `http://` / `https://` origin. The endpoint's key. */
  address: string;
  /** Relative capacity, > 0; divides the cost so weight 2 takes about twice the load. Default 1. */
  weight?: number;
  /** Identity the peer is expected to prove (e.g. a SPIFFE ID), for the mTLS layer. */
  identity?: string;
  /** Protocol hint; `h2` speaks HTTP/2. Default: HTTP/1.1 (or ALPN over TLS). */
  protocol?: ProtocolHint;
  /** Topology zone (e.g. `eu-west-1a`); a balancer with `localZone` prefers its own zone's endpoints. */
  zone?: string;
  /** Free-form labels (pod name, version ...). */
  labels?: Readonly<Record<string, string>>;
  /** Per-endpoint connect options, overriding the balancer's. */
  connect?: EndpointConnect;
}

/** Validated, frozen endpoint metadata. */
export interface EndpointInfo {
  readonly address: string;
  readonly origin: string;
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly weight: number;
  readonly identity: string | undefined;
  readonly protocol: ProtocolHint | undefined;
  readonly zone: string | undefined;
  readonly labels: Readonly<Record<string, string>> | undefined;
  readonly connect: EndpointConnect | undefined;
}

/** Validates an {@link EndpointInit}; errors name `path.<field>`. */
export function endpointInfo(init: unknown, path = "endpoint"): EndpointInfo {
  if (typeof init === "string") return endpointInfo({ address: init }, path);
  if (init === null || typeof init !== "object" || Array.isArray(init)) {
    throw typeError(path, "an endpoint object or address string", init);
  }
  const o = init as EndpointInit;
  const parsed: ParsedAddress = parseAddress(o.address, `${path}.address`);
  const weight = numberIn(`${path}.weight`, o.weight, 1, 0, 1_000_000, true);
  const identity = optionalString(o.identity, `${path}.identity`);
  const zone = optionalString(o.zone, `${path}.zone`);
  if (o.protocol !== undefined && o.protocol !== "http1" && o.protocol !== "h2") {
    throw typeError(`${path}.protocol`, '"http1" or "h2"', o.protocol);
  }
  let labels: Record<string, string> | undefined;
  if (o.labels !== undefined) {
    if (o.labels === null || typeof o.labels !== "object" || Array.isArray(o.labels)) {
      throw typeError(`${path}.labels`, "an object of strings", o.labels);
    }
    labels = {};
    for (const [k, v] of Object.entries(o.labels)) {
      if (typeof v !== "string") throw typeError(`${path}.labels.${k}`, "a string", v);
      labels[k] = v;
    }
    Object.freeze(labels);
  }
  if (
    o.connect !== undefined &&
    (o.connect === null || (typeof o.connect !== "object" && typeof o.connect !== "function"))
  ) {
    throw typeError(`${path}.connect`, "undici connect options or a connector function", o.connect);
  }
  const hostPort = parsed.host.includes(":")
    ? `[${parsed.host}]:${parsed.port}`
    : `${parsed.host}:${parsed.port}`;
  return Object.freeze({
    address: hostPort,
    origin: parsed.origin,
    host: parsed.host,
    port: parsed.port,
    tls: parsed.protocol === "https:",
    weight,
    identity,
    protocol: o.protocol,
    zone,
    labels,
    connect: o.connect,
  });
}

/**
 * True when `endpointInfo(init)` would give exactly `info` (`info` is valid, so `init` then is
 * too). Lets a set re-applying a full endpoint list (every resolver update is one) keep the
 * known endpoints' metadata without parsing each address again. Only the common shape is
 * recognised (a plain `host:port` that is already canonical); anything else answers false and
 * takes the full parse.
 */
export function sameEndpointInit(info: EndpointInfo, init: EndpointInit | string): boolean {
  if (typeof init === "string")
    return (
      init === info.address &&
      !info.tls &&
      info.weight === 1 &&
      info.identity === undefined &&
      info.protocol === undefined &&
      info.zone === undefined &&
      info.labels === undefined &&
      info.connect === undefined
    );
  if (
    init.address !== info.address ||
    info.tls ||
    (init.weight ?? 1) !== info.weight ||
    init.identity !== info.identity ||
    init.protocol !== info.protocol ||
    init.zone !== info.zone ||
    init.connect !== info.connect
  )
    return false;
  const a = init.labels;
  const b = info.labels;
  if (a === undefined || b === undefined) return a === b;
  if (a === null || typeof a !== "object") return false;
  let n = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k) || a[k] !== b[k] || typeof a[k] !== "string") return false;
    n++;
  }
  return n === Object.keys(b).length;
}

function optionalString(value: unknown, path: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0)
    throw typeError(path, "a non-empty string", value);
  return value;
}

/**
 * One endpoint inside an {@link EndpointSet}: metadata, live state, load estimate, failure
 * rate, failure accrual. Owned by the set; read it, don't mutate it.
 */
export class Endpoint {
  /** Current metadata (replaced on re-weight / metadata change). */
  info: EndpointInfo;
  /** Current state. */
  state: EndpointState = "ready";
  /** Requests sent and not yet answered (response headers not yet received). */
  pending = 0;
  /** Requests sent to this endpoint. */
  requests = 0;
  /** Requests classified as failures. */
  failures = 0;
  /** Latency estimator. */
  readonly load: PeakEwma;
  /** Time-decayed failure rate; raises {@link Endpoint.cost} by `exp(k × rate)`. */
  readonly failureRate: FailureRate;
  /** Failure accrual, or undefined when disabled. */
  readonly accrual: FailureAccrual | undefined;
  /** Slot for the adapter (the Balancer keeps the endpoint's undici Pool here). */
  resource: unknown;
  /** @internal position in the ready list, -1 when not ready. */
  readyIndex = -1;
  /** @internal position in the local zone's ready list, -1 when not in it. */
  localIndex = -1;
  /**
   * @internal position in the set's list of ready endpoints whose last exchange failed
   * (candidates for a recheck probe), -1 when not in it.
   */
  failingIndex = -1;
  /** @internal when a failing endpoint that got no request since is probed; `Infinity` while a request is in flight. */
  recheckAt = Number.POSITIVE_INFINITY;
  /** @internal recheck probes sent during the current run of failures (their backoff). */
  rechecks = 0;
  /**
   * Until when (clock ms) the endpoint is pushed back: it asked clients to stay away
   * (`Retry-After`, `grpc-retry-pushback-ms`), and its cost is multiplied meanwhile.
   */
  pushbackUntil = Number.NEGATIVE_INFINITY;
  /** @internal the cost multiplier while pushed back (the set's `pushback.costFactor`). */
  pushbackFactor = 1;
  #weight: number;

  /**
   * @param failureRate defaults to a {@link FailureRate} with default options.
   */
  constructor(
    info: EndpointInfo,
    load: PeakEwma,
    accrual: FailureAccrual | undefined,
    failureRate: FailureRate = new FailureRate(0),
  ) {
    this.info = info;
    this.#weight = info.weight;
    this.load = load;
    this.accrual = accrual;
    this.failureRate = failureRate;
  }

  /** `host:port`. */
  get address(): string {
    return this.info.address;
  }

  /** Current weight. */
  get weight(): number {
    return this.#weight;
  }

  /** @internal */
  setInfo(info: EndpointInfo): void {
    this.info = info;
    this.#weight = info.weight;
  }

  /**
   * Cost at `now` as P2C compares it:
   * `estimate × (pending + 1) × exp(failureCostFactor × failureRate) / weight`, times the
   * pushback factor while the endpoint is pushed back.
   */
  cost(now: number): number {
    const cost =
      (this.load.cost(this.pending, now) * this.failureRate.costMultiplier(now)) / this.#weight;
    return now < this.pushbackUntil ? cost * this.pushbackFactor : cost;
  }
}
