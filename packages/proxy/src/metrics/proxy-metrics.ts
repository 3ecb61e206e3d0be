import type { X509Certificate } from "node:crypto";
import {
  type CounterFamily,
  type GaugeFamily,
  GoldenSignals,
  type HttpLabels,
  type HttpSignals,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  subscribeMeshEvents,
} from "@mesh/metrics";
import type { IdentitySnapshot } from "@mesh/tls-identity";

export type { HttpLabels, HttpSignals };

/** What {@link ProxyMetrics.trackTrustAnchors} reads from an identity. */
interface AnchoredIdentity {
  readonly id: string;
  readonly source: {
    readonly current: IdentitySnapshot | undefined;
    on(event: "update", listener: (s: IdentitySnapshot) => void): unknown;
  };
}

/** The `anchor` label: the first 16 hex digits of the SHA-256 fingerprint, lowercase. */
export function anchorLabel(cert: X509Certificate): string {
  return cert.fingerprint256.replaceAll(":", "").slice(0, 16).toLowerCase();
}

/** The bundle anchor that issued the top of the SVID's chain, if any. */
function anchorOf(s: IdentitySnapshot): X509Certificate | undefined {
  const top = s.svid.chain[s.svid.chain.length - 1];
  if (top === undefined) return undefined;
  return s.bundle.certificates.find(
    (a) =>
      a.fingerprint256 === top.fingerprint256 || (top.checkIssued(a) && top.verify(a.publicKey)),
  );
}

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
  readonly #tlsConnected: CounterFamily;
  readonly #anchorExpiry: GaugeFamily;
  readonly #certAnchor: GaugeFamily;

  constructor() {
    this.signals = new GoldenSignals();
    this.#unsubscribe = subscribeMeshEvents(this.signals.registry);
    this.#tlsRefused = this.signals.registry.counter({
      name: "inbound_tls_refused_total",
      help: "Inbound TLS connections refused before any request (no or untrusted client certificate, handshake failure)",
      labelNames: ["reason"],
    });
    this.#tlsConnected = this.signals.registry.counter({
      name: "outbound_tls_connections_total",
      help: "Outbound mTLS connections to peer proxies, by the key-exchange group negotiated (X25519MLKEM768 is the post-quantum hybrid)",
      labelNames: ["server_id", "group"],
    });
    this.#anchorExpiry = this.signals.registry.gauge({
      name: "identity_trust_anchor_expiration_timestamp_seconds",
      help: "Expiry of each trust anchor in the proxy's bundle (one series per anchor it trusts now)",
      labelNames: ["spiffe_id", "anchor"],
    });
    this.#certAnchor = this.signals.registry.gauge({
      name: "identity_cert_anchor_info",
      help: "1 for the trust anchor the current certificate chains to",
      labelNames: ["spiffe_id", "anchor"],
    });
  }

  /**
   * Follows an identity's bundle and certificate: which anchors are trusted (series come
   * and go with the bundle) and which one the current certificate chains to. What an
   * operator checks between the steps of a trust-anchor rotation.
   */
  trackTrustAnchors(identity: AnchoredIdentity): void {
    const spiffe_id = identity.id;
    let anchors = new Set<string>();
    let certAnchor: string | undefined;
    const apply = (s: IdentitySnapshot) => {
      const next = new Set<string>();
      for (const a of s.bundle.certificates) {
        const anchor = anchorLabel(a);
        next.add(anchor);
        this.#anchorExpiry.set({ spiffe_id, anchor }, Date.parse(a.validTo) / 1000);
      }
      for (const anchor of anchors)
        if (!next.has(anchor)) this.#anchorExpiry.remove({ spiffe_id, anchor });
      anchors = next;
      const signer = anchorOf(s);
      const label = signer === undefined ? undefined : anchorLabel(signer);
      if (certAnchor !== undefined && certAnchor !== label)
        this.#certAnchor.remove({ spiffe_id, anchor: certAnchor });
      if (label !== undefined) this.#certAnchor.set({ spiffe_id, anchor: label }, 1);
      certAnchor = label;
    };
    const current = identity.source.current;
    if (current !== undefined) apply(current);
    identity.source.on("update", apply);
  }

  /** Counts an inbound TLS connection refused during the handshake, by short reason. */
  tlsRefused(reason: string): void {
    this.#tlsRefused.inc({ reason });
  }

  /**
   * Counts an outbound mTLS connection by the key-exchange group it negotiated (read on the
   * client side: Node cannot report the group on the server side of a connection).
   */
  tlsConnected(serverId: string, group: string | undefined): void {
    this.#tlsConnected.inc({ server_id: serverId, group: group ?? "unknown" });
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
