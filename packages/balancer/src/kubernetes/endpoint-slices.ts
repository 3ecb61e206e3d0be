import type { EndpointInit, ProtocolHint } from "../endpoints/endpoint.js";

/** The fields of a `discovery.k8s.io/v1` EndpointSlice that discovery reads. */
export interface EndpointSliceObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  addressType?: "IPv4" | "IPv6" | "FQDN";
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[] | null;
  endpoints?:
    | {
        addresses: string[];
        conditions?: {
          ready?: boolean | null;
          serving?: boolean | null;
          terminating?: boolean | null;
        };
        zone?: string;
        nodeName?: string;
        hints?: { forZones?: { name: string }[] };
        targetRef?: { kind?: string; name?: string; namespace?: string };
      }[]
    | null;
}

/** The fields of a v1 Service that discovery reads. */
export interface ServiceObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: {
    selector?: Record<string, string> | null;
    ports?: { name?: string; port: number; appProtocol?: string }[];
  };
}

/** The fields of a v1 Pod that discovery reads. */
export interface PodObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: { serviceAccountName?: string };
}

/** What {@link endpointsFromSlices} reduces. */
export interface SliceState {
  /** The service's namespace. */
  namespace: string;
  /** Every EndpointSlice of the service. */
  slices: Iterable<EndpointSliceObject>;
  /** The Service, when known (maps a port number to its name, and carries `appProtocol`). */
  service?: ServiceObject | undefined;
  /** Pod name → service account, for identities. */
  serviceAccounts?: ReadonlyMap<string, string>;
}

/** Which port, and how to label endpoints. */
export interface SliceSelection {
  /** The Service port: its name, or its number. */
  port: string | number;
  /** With a trust domain, each endpoint gets `spiffe://<td>/ns/<ns>/sa/<sa>` from its Pod. */
  trustDomain?: string | undefined;
  /** Protocol when the port has no `appProtocol` that says. */
  protocol?: ProtocolHint | undefined;
}

/**
 * The protocol an `appProtocol` asks for: `kubernetes.io/h2c` (and `h2c`, `grpc`) → `h2`,
 * `http` (and `kubernetes.io/http`) → `http1`; anything else (opaque, `kubernetes.io/ws` …) →
 * undefined, leaving the caller's default.
 */
export function protocolOfAppProtocol(appProtocol: string | undefined): ProtocolHint | undefined {
  switch (appProtocol?.toLowerCase()) {
    case "kubernetes.io/h2c":
    case "h2c":
    case "grpc":
      return "h2";
    case "http":
    case "kubernetes.io/http":
      return "http1";
    default:
      return undefined;
  }
}

/** The EndpointSlice port name a Service port (name or number) maps to, or undefined. */
function slicePortName(selection: SliceSelection, service: ServiceObject | undefined) {
  if (typeof selection.port === "string") return selection.port;
  const sp = service?.spec?.ports?.find((p) => p.port === selection.port);
  return sp ? (sp.name ?? "") : undefined;
}

/**
 * The pure core of Kubernetes discovery: reduces a service's EndpointSlices (plus its Service
 * and its Pods' service accounts) to the endpoint set the balancer gets. Rules:
 *
 * - Only `ready` endpoints (ready unset counts as ready, as the API says) are in the set. An
 *   endpoint that turns `terminating` leaves the set, so the balancer drains it: no new
 *   requests, in-flight ones finish. Only when no endpoint is ready are `serving` terminating
 *   ones used (as kube-proxy does), so a service mid-rollout never goes dark.
 * - The port is the slice port named like the Service port (a number is mapped to its name
 *   through the Service; without the Service, to a slice port of that number).
 * - `zone` is the endpoint's `zone`, else its first `hints.forZones`.
 * - With a trust domain, identity is the Pod's service account; an endpoint whose Pod is not
 *   known yet is left out rather than sent plaintext or unverified.
 * - The protocol comes from the port's `appProtocol`, else `selection.protocol`.
 * - An address in several slices (during slice moves) appears once, ready copy preferred.
 *
 * The result is sorted by address, so equal inputs give equal outputs whatever the slice order.
 */
export function endpointsFromSlices(state: SliceState, selection: SliceSelection): EndpointInit[] {
  const wanted = slicePortName(selection, state.service);
  const serviceAppProtocol =
    typeof selection.port === "number"
      ? state.service?.spec?.ports?.find((p) => p.port === selection.port)?.appProtocol
      : state.service?.spec?.ports?.find((p) => (p.name ?? "") === selection.port)?.appProtocol;
  const ready = new Map<string, EndpointInit>();
  const fallback = new Map<string, EndpointInit>();
  for (const slice of state.slices) {
    if (slice.addressType === "FQDN") continue;
    const port = (slice.ports ?? []).find((p) =>
      wanted !== undefined ? (p.name ?? "") === wanted : p.port === selection.port,
    );
    if (port?.port === undefined) continue;
    const protocol =
      protocolOfAppProtocol(port.appProtocol ?? serviceAppProtocol) ?? selection.protocol;
    for (const e of slice.endpoints ?? []) {
      const c = e.conditions ?? {};
      const isReady = c.ready !== false;
      const isServing = c.serving ?? isReady;
      if (!isReady && !(isServing && c.terminating === true)) continue;
      let identity: string | undefined;
      if (selection.trustDomain !== undefined) {
        const podName = e.targetRef?.kind === "Pod" ? e.targetRef.name : undefined;
        const sa = podName !== undefined ? state.serviceAccounts?.get(podName) : undefined;
        if (sa === undefined) continue;
        const ns = e.targetRef?.namespace ?? state.namespace;
        identity = `spiffe://${selection.trustDomain}/ns/${ns}/sa/${sa}`;
      }
      const zone = e.zone ?? e.hints?.forZones?.[0]?.name;
      for (const ip of e.addresses ?? []) {
        const host = ip.includes(":") ? `[${ip}]` : ip;
        const init: EndpointInit = { address: `${host}:${port.port}` };
        if (identity !== undefined) init.identity = identity;
        if (protocol !== undefined) init.protocol = protocol;
        if (zone !== undefined) init.zone = zone;
        const labels: Record<string, string> = {};
        if (e.targetRef?.kind === "Pod" && e.targetRef.name) labels.pod = e.targetRef.name;
        if (e.nodeName) labels.node = e.nodeName;
        if (Object.keys(labels).length > 0) init.labels = labels;
        const into = isReady ? ready : fallback;
        if (!ready.has(init.address)) into.set(init.address, init);
      }
    }
  }
  const chosen = ready.size > 0 ? ready : fallback;
  return [...chosen.values()].sort((a, b) =>
    a.address < b.address ? -1 : a.address > b.address ? 1 : 0,
  );
}
