import { MetricsError } from "../errors.js";
import { assertLabelName, assertMetricName, type Labels, labelText } from "./labels.js";

/** The Prometheus metric types this registry exposes. */
export type MetricType = "counter" | "gauge" | "histogram";

/** What defines a metric family. */
export interface FamilyOptions {
  /** Prometheus metric name, e.g. `request_total`. */
  name: string;
  /** One-line description rendered as `# HELP`. */
  help: string;
  /** Label names in exposition order. */
  labelNames?: readonly string[];
}

/** Receives every histogram observation, e.g. to forward it to OpenTelemetry. */
export interface ObservationSink {
  record(value: number, labels: Labels): void;
}

/** A set of series sharing a name and label names, interned by label values. */
export abstract class Family<S extends Series> {
  /** Metric name. */
  readonly name: string;
  /** HELP text. */
  readonly help: string;
  /** Label names in exposition order. */
  readonly labelNames: readonly string[];
  /** Prometheus type. */
  abstract readonly type: MetricType;
  readonly #series = new Map<string, S>();

  constructor(options: FamilyOptions) {
    assertMetricName(options.name);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = Object.freeze([...(options.labelNames ?? [])]);
    for (const l of this.labelNames) assertLabelName(l);
  }

  /** The series for these label values, created on first use. Resolve once, record often. */
  get(labels: Labels = {}): S {
    const key = labelText(this.labelNames, labels);
    let s = this.#series.get(key);
    if (s === undefined) {
      for (const k of Object.keys(labels)) {
        if (!this.labelNames.includes(k)) {
          throw new MetricsError(
            "MESH_METRICS_LABEL_MISMATCH",
            `${this.name}: expected labels among [${this.labelNames.join(", ")}], got ${JSON.stringify(k)}`,
          );
        }
      }
      s = this.create(key, Object.freeze({ ...labels }));
      this.#series.set(key, s);
    }
    return s;
  }

  /** Removes the series with these label values; returns whether one existed. */
  remove(labels: Labels): boolean {
    return this.#series.delete(labelText(this.labelNames, labels));
  }

  /** Removes a series by its interning key (its rendered label text). */
  removeKey(key: string): boolean {
    return this.#series.delete(key);
  }

  /** Live series, in creation order. */
  series(): IterableIterator<S> {
    return this.#series.values();
  }

  /** Number of live series. */
  get size(): number {
    return this.#series.size;
  }

  protected abstract create(key: string, labels: Labels): S;
}

/** Common shape of a series. */
export interface Series {
  /** Rendered label text (`a="x",b="y"`), also the interning key. */
  readonly key: string;
  /** Label values as given. */
  readonly labels: Labels;
}

/** A monotonically increasing count. */
export class CounterSeries implements Series {
  value = 0;
  constructor(
    readonly key: string,
    readonly labels: Labels,
  ) {}
  /** Adds `n` (default 1). Negative values are the caller's bug and are ignored. */
  inc(n = 1): void {
    if (n > 0) this.value += n;
  }
}

/** A value that goes up and down. */
export class GaugeSeries implements Series {
  value = 0;
  constructor(
    readonly key: string,
    readonly labels: Labels,
  ) {}
  /** Sets the value. */
  set(v: number): void {
    this.value = v;
  }
  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.value += n;
  }
  /** Subtracts `n` (default 1). */
  dec(n = 1): void {
    this.value -= n;
  }
}

/** Observations counted into fixed buckets. */
export class HistogramSeries implements Series {
  /** Non-cumulative count per bucket; the last slot is `+Inf`. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly key: string,
    readonly labels: Labels,
    readonly family: HistogramFamily,
  ) {
    this.counts = new Float64Array(family.buckets.length + 1);
  }
  /** Records one observation. */
  observe(v: number): void {
    const b = this.family.buckets;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
    const sink = this.family.sink;
    if (sink !== undefined) sink.record(v, this.labels);
  }
}

/** A family of counters. */
export class CounterFamily extends Family<CounterSeries> {
  readonly type = "counter" as const;
  /** Adds `n` to the series with these labels (resolves the series every call). */
  inc(labels: Labels = {}, n = 1): void {
    this.get(labels).inc(n);
  }
  protected create(key: string, labels: Labels): CounterSeries {
    return new CounterSeries(key, labels);
  }
}

/** A family of gauges. */
export class GaugeFamily extends Family<GaugeSeries> {
  readonly type = "gauge" as const;
  /** Sets the series with these labels. */
  set(labels: Labels, v: number): void {
    this.get(labels).set(v);
  }
  protected create(key: string, labels: Labels): GaugeSeries {
    return new GaugeSeries(key, labels);
  }
}

/** Options of a histogram family. */
export interface HistogramOptions extends FamilyOptions {
  /** Strictly increasing finite upper bounds; `+Inf` is implied. */
  buckets: readonly number[];
}

/** A family of histograms with fixed buckets. */
export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = "histogram" as const;
  /** Finite upper bounds. */
  readonly buckets: readonly number[];
  /** Rendered `le` values, including the trailing `+Inf`. */
  readonly le: readonly string[];
  /** Optional receiver of every observation (the OpenTelemetry bridge). */
  sink: ObservationSink | undefined;

  constructor(options: HistogramOptions) {
    super(options);
    const b = options.buckets;
    if (!Array.isArray(b) || b.length === 0) {
      throw new TypeError(`buckets: expected a non-empty array of numbers, got ${String(b)}`);
    }
    for (let i = 0; i < b.length; i++) {
      const v = b[i];
      if (typeof v !== "number" || !Number.isFinite(v) || (i > 0 && v <= b[i - 1]!)) {
        throw new RangeError(
          `buckets[${i}]: expected a finite number greater than the previous bound, got ${String(v)}`,
        );
      }
    }
    this.buckets = Object.freeze([...b]);
    this.le = Object.freeze([...b.map(String), "+Inf"]);
  }
  protected create(key: string, labels: Labels): HistogramSeries {
    return new HistogramSeries(key, labels, this);
  }
}

/** Any metric family. */
export type AnyFamily = CounterFamily | GaugeFamily | HistogramFamily;
