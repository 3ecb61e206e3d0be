import {
  type CounterFamily,
  GoldenSignals,
  type HttpLabels,
  type HttpSignals,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  subscribeMeshEvents,
} from "@mesh/metrics";

export type { HttpLabels, HttpSignals };

/**
 * The proxy's metrics: golden signals from @mesh/metrics (Linkerd names and labels) plus
 * the mesh events the libraries publish on `node:diagnostics_channel` (retries, budgets,
 * breakers, balancer endpoints, identity, authorization), rendered in Prometheus text on
 * the admin server's `/metrics`.
 */
export class ProxyMetrics {
  /** The golden-signals recorder. */
  readonly signals: GoldenSignals;
  readonly #unsubscribe: () => void;
  readonly #tlsRefused: CounterFamily;

  constructor() {
    this.signals = new GoldenSignals();
    this.#unsubscribe = subscribeMeshEvents(this.signals.registry);
    this.#tlsRefused = this.signals.registry.counter({
      name: "inbound_tls_refused_total",
      help: "Inbound TLS connections refused before any request (no or untrusted client certificate, handshake failure)",
      labelNames: ["reason"],
    });
  }

  /** Counts an inbound TLS connection refused during the handshake, by short reason. */
  tlsRefused(reason: string): void {
    this.#tlsRefused.inc({ reason });
  }

  /** Stops listening to the mesh's diagnostics channels. */
  close(): void {
    this.#unsubscribe();
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
