import { StatError } from "./errors.js";

/** Cumulative state of one endpoint of a service's backend, from the admin's `/endpoints`. */
export interface EndpointTotals {
  readonly service: string;
  readonly backend: string;
  readonly address: string;
  /** Expected SPIFFE ID of the endpoint when it is meshed with an identity. */
  readonly identity: string | undefined;
  /** `ready`, `ejected`, `probing`, `draining`, or `idle` before any request. */
  readonly state: string;
  readonly pending: number;
  readonly cost: number;
  readonly rttMs: number;
  /**
   * The balancer's time-decayed failure rate, 0..1 (with its prior pseudo-successes): what
   * raises the endpoint's cost by `exp(failureCostFactor × rate)`.
   */
  readonly failureRate: number;
  /** Requests the balancer sent to the endpoint since it appeared. */
  readonly requests: number;
  /** Of those, responses classified as failures. */
  readonly failures: number;
}

/** The key of an endpoint in a totals map. */
export function endpointKey(e: { service: string; backend: string; address: string }): string {
  return `${e.service}\u0000${e.backend}\u0000${e.address}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function bad(what: string, got: unknown): StatError {
  const text = JSON.stringify(got);
  return new StatError(
    "MESH_PROXY_STAT_BAD_RESPONSE",
    `${what}: expected ${what.endsWith("]") ? "an object" : "a list"}, got ${text === undefined ? String(got) : text.slice(0, 80)}`,
  );
}

/**
 * Flattens the admin's `/endpoints` JSON (`[{ service, backends: [{ name, endpoints }] }]`)
 * into one entry per (service, backend, address). An address balanced by several protocol
 * balancers (HTTP/1.1 and h2c) is merged: counters add up, the state of its busiest
 * entry wins, and cost and failure rate are the worse of the two.
 *
 * @throws {StatError} `MESH_PROXY_STAT_BAD_RESPONSE` when the document has another shape.
 */
export function endpointTotals(doc: unknown): Map<string, EndpointTotals> {
  const out = new Map<string, EndpointTotals>();
  if (!Array.isArray(doc)) throw bad("endpoints", doc);
  doc.forEach((svc, i) => {
    if (!isRecord(svc) || !Array.isArray(svc.backends)) throw bad(`endpoints[${i}]`, svc);
    const service = String(svc.service ?? "");
    svc.backends.forEach((b, j) => {
      if (!isRecord(b) || !Array.isArray(b.endpoints)) {
        throw bad(`endpoints[${i}].backends[${j}]`, b);
      }
      const backend = String(b.name ?? service);
      for (const e of b.endpoints) {
        if (!isRecord(e) || typeof e.address !== "string") continue;
        const entry: EndpointTotals = {
          service,
          backend,
          address: e.address,
          identity: typeof e.identity === "string" ? e.identity : undefined,
          state: e.protocol === "idle" ? "idle" : String(e.state ?? "unknown"),
          pending: num(e.pending),
          cost: num(e.cost),
          rttMs: num(e.rttMs),
          failureRate: Math.min(1, num(e.failureRate)),
          requests: num(e.requests),
          failures: num(e.failures),
        };
        const key = endpointKey(entry);
        const seen = out.get(key);
        if (seen === undefined) {
          out.set(key, entry);
          continue;
        }
        const busier = entry.requests > seen.requests ? entry : seen;
        out.set(key, {
          ...busier,
          identity: seen.identity ?? entry.identity,
          pending: seen.pending + entry.pending,
          cost: Math.max(seen.cost, entry.cost),
          failureRate: Math.max(seen.failureRate, entry.failureRate),
          requests: seen.requests + entry.requests,
          failures: seen.failures + entry.failures,
        });
      }
    });
  });
  return out;
}
