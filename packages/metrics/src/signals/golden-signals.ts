import { type Clock, integerIn, monotonicClock, numberIn, typeError } from "@mesh/core";
import { classifyResponse, NO_GRPC_STATUS } from "../classify/classify.js";
import type {
  CounterFamily,
  CounterSeries,
  GaugeFamily,
  GaugeSeries,
  HistogramFamily,
  HistogramSeries,
} from "../registry/family.js";
import { LabelLimiter, type Labels, labelText } from "../registry/labels.js";
import { Registry } from "../registry/registry.js";
import { LATENCY_BUCKETS_MS } from "./buckets.js";
import {
  HTTP_LABEL_NAMES,
  type HttpLabels,
  TCP_LABEL_NAMES,
  type TcpLabels,
  tlsLabel,
} from "./labels.js";

/** Records HTTP signals for one label set. Obtain it once, call it per request. */
export interface HttpSignals {
  /** A request started (`request_total`). */
  request(): void;
  /**
   * A response ended (`response_total`, `response_latency_ms`).
   * @param status HTTP status code.
   * @param grpcStatus gRPC status from headers or trailers, or -1 when absent.
   * @param latencyMs time to first byte of the response.
   */
  response(status: number, grpcStatus: number, latencyMs: number): void;
  /**
   * The stream failed (reset, socket error, timeout) — always a failure.
   * @param latencyMs time until the failure, or until the first byte if one arrived.
   * @param status the HTTP status if headers had arrived, else 0 (label omitted).
   */
  streamError(latencyMs: number, status?: number): void;
}

/** Records TCP signals for one label set. */
export interface TcpSignals {
  /** A connection opened (`tcp_open_total`, `tcp_open_connections`). */
  open(): void;
  /** Bytes read from the peer (`tcp_read_bytes_total`). */
  read(bytes: number): void;
  /** Bytes written to the peer (`tcp_write_bytes_total`). */
  write(bytes: number): void;
  /** A connection closed after `durationMs`; `failed` when it ended in an error. */
  close(durationMs: number, failed?: boolean): void;
}

/** Resolves signal handles by label set. {@link GoldenSignals} and {@link NOOP_SIGNALS} implement it. */
export interface SignalRecorder {
  /** The HTTP handle for this label set (interned: same labels, same handle). */
  http(labels: HttpLabels): HttpSignals;
  /** The TCP handle for this label set (interned). */
  tcp(labels: TcpLabels): TcpSignals;
}

const noopHttp: HttpSignals = { request() {}, response() {}, streamError() {} };
const noopTcp: TcpSignals = { open() {}, read() {}, write() {}, close() {} };

/** A recorder that records nothing: the "metrics off" switch with the same API. */
export const NOOP_SIGNALS: SignalRecorder = Object.freeze({
  http: () => noopHttp,
  tcp: () => noopTcp,
});

/** Options of {@link GoldenSignals}. */
export interface GoldenSignalsOptions {
  /** Registry to create the families in (default: a new one). */
  registry?: Registry;
  /** Time source for idle expiry (default `performance.now()`). */
  clock?: Clock;
  /** A label set unused this long is removed from the exposition (default 600 000 = 10 min, Linkerd's). */
  idleTimeoutMs?: number;
  /** Maximum distinct `authority` values; more map to `other` (default 1000). */
  maxAuthorities?: number;
  /** Maximum distinct `route` values; more map to `other` (default 200). */
  maxRoutes?: number;
}

interface ResponseSeries {
  readonly counter: CounterSeries;
  readonly latency: HistogramSeries;
}

/** The families GoldenSignals records into. */
interface Families {
  request: CounterFamily;
  response: CounterFamily;
  latency: HistogramFamily;
  tcpOpen: CounterFamily;
  tcpClose: CounterFamily;
  tcpOpenConns: GaugeFamily;
  tcpRead: CounterFamily;
  tcpWrite: CounterFamily;
  tcpDuration: HistogramFamily;
  overflow: CounterFamily;
}

const RESPONSE_LABELS = [...HTTP_LABEL_NAMES, "classification", "status_code", "grpc_status_code"];
const LATENCY_LABELS = [...HTTP_LABEL_NAMES, "status_code"];
const TCP_CLOSE_LABELS = [...TCP_LABEL_NAMES, "classification"];

/** Base of a label-set handle: idle tracking shared by HTTP and TCP. */
abstract class Handle {
  touched = true;
  lastSeen: number;
  expired = false;
  constructor(
    readonly key: string,
    readonly labels: Labels,
    readonly f: Families,
    now: number,
  ) {
    this.lastSeen = now;
  }
  abstract revive(): void;
  abstract release(): void;
  abstract get busy(): boolean;
}

class HttpHandle extends Handle implements HttpSignals {
  #requests: CounterSeries;
  readonly #responses = new Map<number, ResponseSeries>();

  constructor(key: string, labels: Labels, f: Families, now: number) {
    super(key, labels, f, now);
    this.#requests = f.request.get(labels);
  }

  request(): void {
    if (this.expired) this.revive();
    this.touched = true;
    this.#requests.value++;
  }

  response(status: number, grpcStatus: number, latencyMs: number): void {
    if (this.expired) this.revive();
    this.touched = true;
    const g = grpcStatus >= 0 && grpcStatus < 1023 ? grpcStatus | 0 : NO_GRPC_STATUS;
    const k = (status | 0) * 1024 + g + 1;
    let r = this.#responses.get(k);
    if (r === undefined) r = this.#resolve(k, status | 0, g, false);
    r.counter.value++;
    r.latency.observe(latencyMs);
  }

  streamError(latencyMs: number, status = 0): void {
    if (this.expired) this.revive();
    this.touched = true;
    const k = -1 - (status | 0);
    let r = this.#responses.get(k);
    if (r === undefined) r = this.#resolve(k, status | 0, NO_GRPC_STATUS, true);
    r.counter.value++;
    r.latency.observe(latencyMs);
  }

  #resolve(k: number, status: number, grpc: number, failed: boolean): ResponseSeries {
    const statusCode = status > 0 ? String(status) : undefined;
    const counter = this.f.response.get({
      ...this.labels,
      classification: failed ? "failure" : classifyResponse(status, grpc),
      status_code: statusCode,
      grpc_status_code: grpc >= 0 ? String(grpc) : undefined,
    });
    const latency = this.f.latency.get({ ...this.labels, status_code: statusCode });
    const r = { counter, latency };
    this.#responses.set(k, r);
    return r;
  }

  get busy(): boolean {
    return false;
  }

  revive(): void {
    this.expired = false;
    this.#requests = this.f.request.get(this.labels);
    this.#responses.clear();
  }

  release(): void {
    this.expired = true;
    this.f.request.removeKey(this.#requests.key);
    for (const r of this.#responses.values()) {
      this.f.response.removeKey(r.counter.key);
      this.f.latency.removeKey(r.latency.key);
    }
    this.#responses.clear();
  }
}

class TcpHandle extends Handle implements TcpSignals {
  #open!: CounterSeries;
  #success!: CounterSeries;
  #failure!: CounterSeries;
  #conns!: GaugeSeries;
  #read!: CounterSeries;
  #write!: CounterSeries;
  #duration!: HistogramSeries;

  constructor(key: string, labels: Labels, f: Families, now: number) {
    super(key, labels, f, now);
    this.revive();
  }

  open(): void {
    if (this.expired) this.revive();
    this.touched = true;
    this.#open.value++;
    this.#conns.value++;
  }
  read(bytes: number): void {
    if (this.expired) this.revive();
    this.touched = true;
    if (bytes > 0) this.#read.value += bytes;
  }
  write(bytes: number): void {
    if (this.expired) this.revive();
    this.touched = true;
    if (bytes > 0) this.#write.value += bytes;
  }
  close(durationMs: number, failed = false): void {
    if (this.expired) this.revive();
    this.touched = true;
    (failed ? this.#failure : this.#success).value++;
    this.#conns.value--;
    this.#duration.observe(durationMs);
  }

  get busy(): boolean {
    return this.#conns.value > 0;
  }

  revive(): void {
    const f = this.f;
    const l = this.labels;
    this.expired = false;
    this.#open = f.tcpOpen.get(l);
    this.#success = f.tcpClose.get({ ...l, classification: "success" });
    this.#failure = f.tcpClose.get({ ...l, classification: "failure" });
    this.#conns = f.tcpOpenConns.get(l);
    this.#read = f.tcpRead.get(l);
    this.#write = f.tcpWrite.get(l);
    this.#duration = f.tcpDuration.get(l);
  }

  release(): void {
    this.expired = true;
    const f = this.f;
    f.tcpOpen.removeKey(this.#open.key);
    f.tcpClose.removeKey(this.#success.key);
    f.tcpClose.removeKey(this.#failure.key);
    f.tcpOpenConns.removeKey(this.#conns.key);
    f.tcpRead.removeKey(this.#read.key);
    f.tcpWrite.removeKey(this.#write.key);
    f.tcpDuration.removeKey(this.#duration.key);
  }
}

/**
 * The golden-signals recorder, with Linkerd's metric names and labels.
 *
 * Resolve a handle once per label set (`signals.http({...})`, `signals.tcp({...})`) and
 * record on it per request: recording is a few field increments, no allocation after the
 * first response of each status. `authority` and `route` values are capped (overflow maps
 * to `other`, counted in `mesh_metrics_label_overflow_total`), and label sets unused for
 * `idleTimeoutMs` are dropped from the exposition at the next collection; a handle kept
 * past that simply re-registers on its next use.
 */
export class GoldenSignals implements SignalRecorder {
  /** The registry holding the families (render it with `renderPrometheus`). */
  readonly registry: Registry;
  readonly #clock: Clock;
  readonly #idleMs: number;
  readonly #authorities: LabelLimiter;
  readonly #routes: LabelLimiter;
  readonly #f: Families;
  readonly #http = new Map<string, HttpHandle>();
  readonly #tcp = new Map<string, TcpHandle>();

  constructor(options: GoldenSignalsOptions = {}) {
    if (typeof options !== "object" || options === null)
      throw typeError("options", "an object", options);
    if (options.registry !== undefined && !(options.registry instanceof Registry)) {
      throw typeError("registry", "a Registry", options.registry);
    }
    if (options.clock !== undefined && typeof options.clock?.now !== "function") {
      throw typeError("clock", "an object with now()", options.clock);
    }
    this.registry = options.registry ?? new Registry();
    this.#clock = options.clock ?? monotonicClock;
    this.#idleMs = numberIn(
      "idleTimeoutMs",
      options.idleTimeoutMs,
      600_000,
      0,
      Number.POSITIVE_INFINITY,
      true,
    );
    this.#authorities = new LabelLimiter(
      integerIn("maxAuthorities", options.maxAuthorities, 1000, 1),
    );
    this.#routes = new LabelLimiter(integerIn("maxRoutes", options.maxRoutes, 200, 1));
    const r = this.registry;
    const http = HTTP_LABEL_NAMES;
    const tcp = TCP_LABEL_NAMES;
    this.#f = {
      request: r.counter({ name: "request_total", help: "Requests started.", labelNames: http }),
      response: r.counter({
        name: "response_total",
        help: "Responses ended, classified as success or failure.",
        labelNames: RESPONSE_LABELS,
      }),
      latency: r.histogram({
        name: "response_latency_ms",
        help: "Time to first byte of the response, in milliseconds.",
        labelNames: LATENCY_LABELS,
        buckets: LATENCY_BUCKETS_MS,
      }),
      tcpOpen: r.counter({
        name: "tcp_open_total",
        help: "TCP connections opened.",
        labelNames: tcp,
      }),
      tcpClose: r.counter({
        name: "tcp_close_total",
        help: "TCP connections closed, classified as success or failure.",
        labelNames: TCP_CLOSE_LABELS,
      }),
      tcpOpenConns: r.gauge({
        name: "tcp_open_connections",
        help: "TCP connections currently open.",
        labelNames: tcp,
      }),
      tcpRead: r.counter({
        name: "tcp_read_bytes_total",
        help: "Bytes read from TCP peers.",
        labelNames: tcp,
      }),
      tcpWrite: r.counter({
        name: "tcp_write_bytes_total",
        help: "Bytes written to TCP peers.",
        labelNames: tcp,
      }),
      tcpDuration: r.histogram({
        name: "tcp_connection_duration_ms",
        help: "Lifetime of closed TCP connections, in milliseconds.",
        labelNames: tcp,
        buckets: LATENCY_BUCKETS_MS,
      }),
      overflow: r.counter({
        name: "mesh_metrics_label_overflow_total",
        help: "Label-set resolutions whose value was replaced by 'other' because its label hit the cardinality cap.",
        labelNames: ["label"],
      }),
    };
    r.onCollect(() => this.sweep());
  }

  /** The HTTP handle for this label set. Call once per (authority, route, peer), not per request. */
  http(labels: HttpLabels): HttpSignals {
    const l = this.#labels(labels, true);
    const key = labelText(HTTP_LABEL_NAMES, l);
    let h = this.#http.get(key);
    if (h === undefined) {
      h = new HttpHandle(key, l, this.#f, this.#clock.now());
      this.#http.set(key, h);
    } else if (h.expired) h.revive();
    return h;
  }

  /** The TCP handle for this label set. */
  tcp(labels: TcpLabels): TcpSignals {
    const l = this.#labels(labels, false);
    const key = labelText(TCP_LABEL_NAMES, l);
    let h = this.#tcp.get(key);
    if (h === undefined) {
      h = new TcpHandle(key, l, this.#f, this.#clock.now());
      this.#tcp.set(key, h);
    } else if (h.expired) h.revive();
    return h;
  }

  /**
   * Drops label sets idle for `idleTimeoutMs` (TCP ones only once no connection is open)
   * and frees their capped label values. Runs on every collection; call it to force one.
   */
  sweep(): void {
    const now = this.#clock.now();
    const authorities = new Set<string>();
    const routes = new Set<string>();
    for (const map of [this.#http, this.#tcp] as Map<string, Handle>[]) {
      for (const [key, h] of map) {
        if (h.touched) {
          h.touched = false;
          h.lastSeen = now;
        } else if (!h.busy && now - h.lastSeen >= this.#idleMs) {
          h.release();
          map.delete(key);
          continue;
        }
        const a = h.labels.authority;
        if (a !== undefined) authorities.add(a);
        const r = h.labels.route;
        if (r !== undefined) routes.add(r);
      }
    }
    this.#authorities.retain(authorities);
    this.#routes.retain(routes);
    if (this.#authorities.overflowed > 0) {
      this.#f.overflow.get({ label: "authority" }).value = this.#authorities.overflowed;
    }
    if (this.#routes.overflowed > 0) {
      this.#f.overflow.get({ label: "route" }).value = this.#routes.overflowed;
    }
  }

  #labels(labels: HttpLabels | TcpLabels, http: boolean): Record<string, string | undefined> {
    if (typeof labels !== "object" || labels === null)
      throw typeError("labels", "an object", labels);
    const d = labels.direction;
    if (d !== "inbound" && d !== "outbound") {
      throw typeError("labels.direction", '"inbound" or "outbound"', d);
    }
    const a = labels.authority;
    const out: Record<string, string | undefined> = {
      direction: d,
      authority: a === undefined || a === "" ? undefined : this.#authorities.admit(a),
      tls: tlsLabel(labels.tls),
      client_id: labels.clientId,
      server_id: labels.serverId,
    };
    if (http) {
      const h = labels as HttpLabels;
      out.route = h.route === undefined || h.route === "" ? undefined : this.#routes.admit(h.route);
      out.backend = h.backend;
    }
    return out;
  }
}
