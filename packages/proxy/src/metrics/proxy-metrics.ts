import {
  GoldenSignals,
  type HttpLabels,
  type HttpSignals,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
} from "@mesh/metrics";

export type { HttpLabels, HttpSignals };

/**
 * The proxy's metrics: golden signals from @mesh/metrics (Linkerd names and labels),
 * rendered in Prometheus text on the admin server's `/metrics`.
 */
export class ProxyMetrics {
  /** The golden-signals recorder. */
  readonly signals: GoldenSignals;

  constructor() {
    this.signals = new GoldenSignals();
  }

  /** The HTTP signal handle for a label set (interned by the recorder). */
  http(labels: HttpLabels): HttpSignals {
    return this.signals.http(labels);
  }

  /** Prometheus text exposition of everything recorded. */
  render(): string {
    return renderPrometheus(this.signals.registry);
  }

  /** Content type of {@link render}'s output. */
  get contentType(): string {
    return PROMETHEUS_CONTENT_TYPE;
  }
}
