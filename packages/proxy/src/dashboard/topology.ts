import type { ProxyStat } from "../stat/compute.js";

/** What the dashboard knows about a proxy beyond its stats (from its `/config`). */
export interface ProxyIdentity {
  /** The proxy's SPIFFE ID (`identity.id`), when it has one. */
  readonly identity: string | null;
  /** Its inbound `host:port` when configured with a fixed port. */
  readonly inbound: string | null;
}

/** A workload in the topology graph. */
export interface TopologyNode {
  /** Proxy name, service name, or `clients` for unmeshed callers. */
  readonly id: string;
  readonly kind: "proxy" | "service" | "clients";
  /** False when its admin server stopped answering. */
  readonly up: boolean;
}

/** Traffic from one workload to another over the last window. */
export interface TopologyEdge {
  readonly from: string;
  readonly to: string;
  /** The service (outbound) or authority (inbound) the traffic is for. */
  readonly service: string;
  readonly rps: number | null;
  readonly successRate: number | null;
  /** Whether the traffic is mutually authenticated. */
  readonly mtls: boolean;
  /** The identity the caller verified (server's) or the callee saw (client's). */
  readonly identity: string | null;
}

const sum = (xs: (number | null)[]) =>
  xs.some((x) => x !== null) ? xs.reduce<number>((a, x) => a + (x ?? 0), 0) : null;

function portOf(address: string): string {
  return address.slice(address.lastIndexOf(":") + 1);
}

/**
 * The graph of workloads: an edge per (caller proxy, callee workload, service) from the
 * callers' balanced endpoints (callee = the proxy whose identity the endpoint expects, or
 * whose fixed inbound port it dials, else the service itself), and an edge from `clients`
 * into each proxy for inbound traffic no known proxy sent (plaintext, or identities not
 * among the proxies). Edge numbers: summed endpoint rps, request-weighted success.
 */
export function topology(
  proxies: readonly ProxyStat[],
  info: ReadonlyMap<string, ProxyIdentity>,
): { nodes: TopologyNode[]; edges: TopologyEdge[] } {
  const nodes = new Map<string, TopologyNode>();
  for (const p of proxies) nodes.set(p.proxy, { id: p.proxy, kind: "proxy", up: p.error === null });
  const byIdentity = new Map<string, string>();
  const byPort = new Map<string, string>();
  for (const [name, i] of info) {
    if (i.identity !== null) byIdentity.set(i.identity, name);
    if (i.inbound !== null && portOf(i.inbound) !== "0") byPort.set(portOf(i.inbound), name);
  }
  const edges = new Map<
    string,
    {
      from: string;
      to: string;
      service: string;
      rps: (number | null)[];
      ok: number;
      n: number;
      mtls: boolean;
      identity: string | null;
    }
  >();
  for (const p of proxies) {
    for (const e of p.endpoints) {
      const to =
        (e.identity !== null ? byIdentity.get(e.identity) : undefined) ??
        byPort.get(portOf(e.address)) ??
        e.service;
      if (!nodes.has(to)) nodes.set(to, { id: to, kind: "service", up: true });
      const key = `${p.proxy}\u0000${to}\u0000${e.service}`;
      let edge = edges.get(key);
      if (edge === undefined) {
        edge = {
          from: p.proxy,
          to,
          service: e.service,
          rps: [],
          ok: 0,
          n: 0,
          mtls: e.identity !== null,
          identity: e.identity,
        };
        edges.set(key, edge);
      }
      edge.rps.push(e.rps);
      if (e.successRate !== null && e.rps !== null) {
        edge.ok += e.successRate * e.rps;
        edge.n += e.rps;
      }
    }
    for (const t of p.traffic) {
      if (t.direction !== "inbound") continue;
      const known = t.clientIds.some((id) => byIdentity.has(id));
      if (known) continue;
      if (!nodes.has("clients")) nodes.set("clients", { id: "clients", kind: "clients", up: true });
      edges.set(`clients\u0000${p.proxy}\u0000${t.authority}`, {
        from: "clients",
        to: p.proxy,
        service: t.authority,
        rps: [t.rps],
        ok: (t.successRate ?? 0) * (t.rps ?? 0),
        n: t.successRate === null ? 0 : (t.rps ?? 0),
        mtls: t.mtls === "yes",
        identity: t.clientIds[0] ?? null,
      });
    }
  }
  return {
    nodes: [...nodes.values()],
    edges: [...edges.values()].map((e) => ({
      from: e.from,
      to: e.to,
      service: e.service,
      rps: sum(e.rps),
      successRate: e.n > 0 ? e.ok / e.n : null,
      mtls: e.mtls,
      identity: e.identity,
    })),
  };
}
