import diagnostics_channel from "node:diagnostics_channel";
import { isUnobserved, type MeshChannelName, meshChannels } from "@mesh/core";
import type { CounterFamily, CounterSeries } from "../registry/family.js";
import { LabelLimiter } from "../registry/labels.js";
import type { Registry } from "../registry/registry.js";

const { retry, balancer, identity, limit, authz } = meshChannels;

/**
 * The mesh channels this module counts: every one in `@mesh/core`'s `meshChannels` except
 * those in {@link UNCOUNTED_MESH_CHANNELS}.
 */
export const COUNTED_MESH_CHANNELS = Object.freeze([
  retry.attempt,
  retry.retry,
  retry.budgetExhausted,
  retry.limitExceeded,
  retry.timeout,
  retry.breaker,
  retry.breakerRejected,
  retry.hedge,
  retry.hedgeWon,
  balancer.endpoint,
  balancer.failFast,
  balancer.zone,
  identity.svid,
  identity.refreshFailed,
  identity.issued,
  limit.rateLimited,
  limit.queued,
  limit.concurrencyRejected,
  limit.concurrencyLimit,
  authz.decision,
] as const);

/**
 * Mesh channels published but deliberately not counted, with why: `mesh:proxy:request` (the
 * proxy's per-request tap events). A channel added to `@mesh/core` must land in one of the two
 * lists (a test checks it).
 */
export const UNCOUNTED_MESH_CHANNELS: Readonly<Partial<Record<MeshChannelName, string>>> =
  Object.freeze({
    [meshChannels.proxy.request]:
      "one event per finished request, for live tap: request_total / response_total / response_latency_ms already count every request, and subscribing here would make every request build an event",
  });

/** Options of {@link subscribeMeshEvents}. */
export interface MeshEventsOptions {
  /** Distinct free-text `reason` values kept per metric; more become `other` (default 32). */
  maxReasons?: number;
}

const BREAKER_STATES = ["closed", "open", "half-open"] as const;
const LIMIT_KINDS: readonly unknown[] = ["total", "identity", "override"];
const ENDPOINT_STATES = ["ready", "probing", "ejected", "draining"] as const;
const ZONE_STATES = ["local", "spillover"] as const;

type Payload = Record<string, unknown>;

/** The series an authorization decision last counted into, and that decision's raw fields. */
interface LastDecision {
  readonly family: CounterFamily;
  series: CounterSeries | undefined;
  port: unknown;
  route: unknown;
  reason: unknown;
}
const str = (v: unknown): string | undefined =>
  typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined;

/** Names a {@link byName} cache holds; past it, series are resolved per event. */
const MAX_CACHED_NAMES = 1_024;

/**
 * The series of `family` for a `name` label, resolved once per name: events published on
 * every request (`mesh:retry:attempt`) then cost a map lookup, not a rendered label set.
 * For families whose series are never removed.
 */
function byName(family: CounterFamily): (name: string) => CounterSeries {
  const cache = new Map<string, CounterSeries>();
  return (name) => {
    let series = cache.get(name);
    if (series === undefined) {
      series = family.get({ name });
      if (cache.size < MAX_CACHED_NAMES) cache.set(name, series);
    }
    return series;
  };
}

/**
 * Subscribes to the mesh's diagnostics channels and turns events into series in
 * `registry` (names in the README). Payloads that do not match the contract are counted
 * in `mesh_metrics_invalid_events_total{channel}` and otherwise ignored: a publisher bug
 * never throws into the publisher. Returns a function that unsubscribes.
 */
export function subscribeMeshEvents(
  registry: Registry,
  options: MeshEventsOptions = {},
): () => void {
  const maxReasons = options.maxReasons ?? 32;
  if (!Number.isInteger(maxReasons) || maxReasons < 1) {
    throw new RangeError(`maxReasons: expected a positive integer, got ${String(maxReasons)}`);
  }
  const reason = () => {
    const limiter = new LabelLimiter(maxReasons);
    return (v: unknown) => limiter.admit(str(v) ?? "unknown");
  };
  const c = (name: string, help: string, labelNames: string[]) =>
    registry.counter({ name, help, labelNames });
  const g = (name: string, help: string, labelNames: string[]) =>
    registry.gauge({ name, help, labelNames });

  const invalid = c(
    "mesh_metrics_invalid_events_total",
    "Diagnostics-channel events ignored because their payload did not match the contract.",
    ["channel"],
  );
  const retryRequests = c(
    "mesh_retry_requests_total",
    "Original requests seen by a retry policy.",
    ["name"],
  );
  const retryRequestsOf = byName(retryRequests);
  const retries = c("mesh_retry_retries_total", "Retries scheduled.", ["name", "reason"]);
  const budgetExhausted = c(
    "mesh_retry_budget_exhausted_total",
    "Retryable failures not retried because the retry budget was exhausted.",
    ["name", "reason"],
  );
  const limitExceeded = c(
    "mesh_retry_limit_exceeded_total",
    "Retryable failures not retried because the retry limit was reached.",
    ["name", "reason"],
  );
  const timeouts = c(
    "mesh_retry_timeouts_total",
    "Timeouts fired, by kind (request, per-try, idle).",
    ["name", "kind"],
  );
  const hedges = c(
    "mesh_retry_hedges_total",
    "Hedged attempts sent while an earlier attempt of the request was still running.",
    ["name"],
  );
  const hedgesWon = c(
    "mesh_retry_hedges_won_total",
    "Requests answered by a hedge (the earlier attempts were cancelled).",
    ["name"],
  );
  const breakerState = g(
    "mesh_circuit_breaker_state",
    "1 for the circuit breaker's current state, 0 for the others.",
    ["name", "state"],
  );
  const breakerTransitions = c(
    "mesh_circuit_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["name", "state"],
  );
  const breakerRejected = c(
    "mesh_circuit_breaker_rejected_total",
    "Requests failed fast because the circuit breaker was open.",
    ["name"],
  );
  const endpointState = g(
    "mesh_balancer_endpoint_state",
    "1 for the endpoint's current state, 0 for the others; removed endpoints disappear.",
    ["balancer", "address", "state"],
  );
  const endpointCost = g(
    "mesh_balancer_endpoint_cost",
    "The endpoint's last reported load-balancing cost (Peak-EWMA RTT x (pending + 1)).",
    ["balancer", "address"],
  );
  const endpointPending = g(
    "mesh_balancer_endpoint_pending",
    "The endpoint's last reported number of requests in flight.",
    ["balancer", "address"],
  );
  const endpointTransitions = c(
    "mesh_balancer_endpoint_transitions_total",
    "Endpoint state changes, by the state entered.",
    ["balancer", "state", "reason"],
  );
  const failFast = c(
    "mesh_balancer_fail_fast_total",
    "Requests failed because no endpoint became ready in time.",
    ["balancer"],
  );
  const zoneState = g(
    "mesh_balancer_zone_state",
    "1 for where a zone-local balancer picks now (local or spillover), 0 for the other.",
    ["balancer", "zone", "state"],
  );
  const zoneTransitions = c(
    "mesh_balancer_zone_transitions_total",
    "Zone-local balancer switches, by the state entered and why.",
    ["balancer", "zone", "state", "reason"],
  );
  const certExpiry = g(
    "identity_cert_expiration_timestamp_seconds",
    "Expiry (notAfter) of the SVID in use, in seconds since the epoch.",
    ["spiffe_id"],
  );
  const certRefresh = c(
    "identity_cert_refresh_total",
    "New SVIDs put in use, by source (issuer or files).",
    ["spiffe_id", "source"],
  );
  const certRefreshFailed = c("identity_cert_refresh_failures_total", "Failed SVID refreshes.", [
    "spiffe_id",
  ]);
  const issued = c("identity_issuer_certs_issued_total", "Certificates signed by this issuer.", []);
  const authz = {
    httpAllow: c("inbound_http_authz_allow_total", "Inbound HTTP/gRPC requests authorized.", [
      "target_port",
      "route",
      "reason",
    ]),
    httpDeny: c("inbound_http_authz_deny_total", "Inbound HTTP/gRPC requests denied.", [
      "target_port",
      "route",
      "reason",
    ]),
    tcpAllow: c("inbound_tcp_authz_allow_total", "Inbound TCP connections authorized.", [
      "target_port",
      "reason",
    ]),
    tcpDeny: c("inbound_tcp_authz_deny_total", "Inbound TCP connections denied.", [
      "target_port",
      "reason",
    ]),
  };

  const rateLimited = c(
    "mesh_ratelimit_rejected_total",
    "Requests refused by a rate limit, by the limit that refused them (total, identity, override).",
    ["name", "limit"],
  );
  const rateQueued = c(
    "mesh_ratelimit_queued_total",
    "Outbound requests delayed by a rate limit instead of refused.",
    ["name"],
  );
  const concurrencyRejected = c(
    "mesh_concurrency_limit_rejected_total",
    "Requests refused by an adaptive concurrency limit.",
    ["name"],
  );
  const concurrencyLimit = g(
    "mesh_concurrency_limit",
    "The adaptive concurrency limit (requests in flight admitted).",
    ["name"],
  );
  const concurrencyMinRtt = g(
    "mesh_concurrency_limit_min_rtt_ms",
    "The adaptive concurrency limiter's latest minRTT measurement, ms.",
    ["name"],
  );

  const lastDecision = (family: CounterFamily): LastDecision => ({
    family,
    series: undefined,
    port: undefined,
    route: undefined,
    reason: undefined,
  });
  const authzLast = {
    httpAllow: lastDecision(authz.httpAllow),
    httpDeny: lastDecision(authz.httpDeny),
    tcpAllow: lastDecision(authz.tcpAllow),
    tcpDeny: lastDecision(authz.tcpDeny),
  };

  const zoneReason = reason();
  const retryReason = reason();
  const budgetReason = reason();
  const limitReason = reason();
  const endpointReason = reason();
  const authzReason = reason();
  const authzRoute = reason();

  const handlers: Record<(typeof COUNTED_MESH_CHANNELS)[number], (p: Payload) => boolean> = {
    "mesh:retry:attempt": (p) => {
      const name = str(p.name);
      if (name === undefined || typeof p.attempt !== "number") return false;
      if (p.attempt === 0) retryRequestsOf(name).inc();
      return true;
    },
    "mesh:retry:retry": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      retries.inc({ name, reason: retryReason(p.reason) });
      return true;
    },
    "mesh:retry:budget-exhausted": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      budgetExhausted.inc({ name, reason: budgetReason(p.reason) });
      return true;
    },
    "mesh:retry:limit-exceeded": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      limitExceeded.inc({ name, reason: limitReason(p.reason) });
      return true;
    },
    "mesh:retry:timeout": (p) => {
      const name = str(p.name);
      const kind = p.kind;
      if (name === undefined || (kind !== "request" && kind !== "per-try" && kind !== "idle")) {
        return false;
      }
      timeouts.inc({ name, kind });
      return true;
    },
    "mesh:retry:breaker": (p) => {
      const name = str(p.name);
      const state = p.state as (typeof BREAKER_STATES)[number];
      if (name === undefined || !BREAKER_STATES.includes(state)) return false;
      for (const s of BREAKER_STATES) breakerState.set({ name, state: s }, s === state ? 1 : 0);
      breakerTransitions.inc({ name, state });
      return true;
    },
    "mesh:retry:breaker-rejected": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      breakerRejected.inc({ name });
      return true;
    },
    "mesh:retry:hedge": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      hedges.inc({ name });
      return true;
    },
    "mesh:retry:hedge-won": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      hedgesWon.inc({ name });
      return true;
    },
    "mesh:balancer:endpoint": (p) => {
      const balancer = str(p.balancer);
      const address = str(p.address);
      const state = p.state as string;
      if (balancer === undefined || address === undefined) return false;
      if (state === "removed") {
        for (const s of ENDPOINT_STATES) endpointState.remove({ balancer, address, state: s });
        endpointCost.remove({ balancer, address });
        endpointPending.remove({ balancer, address });
      } else if ((ENDPOINT_STATES as readonly string[]).includes(state)) {
        for (const s of ENDPOINT_STATES) {
          endpointState.set({ balancer, address, state: s }, s === state ? 1 : 0);
        }
        if (typeof p.cost === "number") endpointCost.set({ balancer, address }, p.cost);
        if (typeof p.pending === "number") endpointPending.set({ balancer, address }, p.pending);
      } else return false;
      endpointTransitions.inc({
        balancer,
        state,
        reason: p.reason === undefined ? undefined : endpointReason(p.reason),
      });
      return true;
    },
    "mesh:balancer:fail-fast": (p) => {
      const balancer = str(p.balancer);
      if (balancer === undefined) return false;
      failFast.inc({ balancer });
      return true;
    },
    "mesh:balancer:zone": (p) => {
      const name = str(p.balancer);
      const zone = str(p.zone);
      const state = p.state as (typeof ZONE_STATES)[number];
      if (name === undefined || zone === undefined || !ZONE_STATES.includes(state)) return false;
      for (const s of ZONE_STATES)
        zoneState.set({ balancer: name, zone, state: s }, s === state ? 1 : 0);
      zoneTransitions.inc({ balancer: name, zone, state, reason: zoneReason(p.reason) });
      return true;
    },
    "mesh:identity:svid": (p) => {
      const spiffeId = str(p.spiffeId);
      const source = p.source;
      if (spiffeId === undefined || typeof p.notAfter !== "number") return false;
      certExpiry.set({ spiffe_id: spiffeId }, p.notAfter / 1000);
      certRefresh.inc({
        spiffe_id: spiffeId,
        source:
          source === "issuer" || source === "files" || source === "workload-api"
            ? source
            : "unknown",
      });
      return true;
    },
    "mesh:identity:refresh-failed": (p) => {
      const spiffeId = str(p.spiffeId);
      if (spiffeId === undefined) return false;
      certRefreshFailed.inc({ spiffe_id: spiffeId });
      return true;
    },
    "mesh:identity:issued": (p) => {
      if (str(p.spiffeId) === undefined) return false;
      issued.inc();
      return true;
    },
    // One event per inbound request: a decision repeating the previous one of its kind (same
    // port, route and reason) counts into that series without rendering its label set again.
    "mesh:authz:decision": (p) => {
      if (typeof p.allowed !== "boolean") return false;
      let last: LastDecision;
      if (p.protocol === "tcp") last = p.allowed ? authzLast.tcpAllow : authzLast.tcpDeny;
      else if (p.protocol === "http" || p.protocol === "grpc") {
        last = p.allowed ? authzLast.httpAllow : authzLast.httpDeny;
      } else return false;
      const http = p.protocol !== "tcp";
      const route = http ? p.route : undefined;
      if (
        last.series === undefined ||
        last.port !== p.port ||
        last.route !== route ||
        last.reason !== p.reason
      ) {
        const labels = {
          target_port: str(p.port),
          reason: authzReason(p.reason),
          ...(http && route !== undefined ? { route: authzRoute(route) } : {}),
        };
        last.series = last.family.get(labels);
        last.port = p.port;
        last.route = route;
        last.reason = p.reason;
      }
      last.series.inc();
      return true;
    },
    "mesh:limit:rate-limited": (p) => {
      const name = str(p.name);
      if (name === undefined || !LIMIT_KINDS.includes(p.limit)) return false;
      rateLimited.inc({ name, limit: p.limit as string });
      return true;
    },
    "mesh:limit:queued": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      rateQueued.inc({ name });
      return true;
    },
    "mesh:limit:concurrency-rejected": (p) => {
      const name = str(p.name);
      if (name === undefined) return false;
      concurrencyRejected.inc({ name });
      return true;
    },
    "mesh:limit:concurrency-limit": (p) => {
      const name = str(p.name);
      if (name === undefined || typeof p.limit !== "number") return false;
      concurrencyLimit.set({ name }, p.limit);
      if (typeof p.minRttMs === "number" && !Number.isNaN(p.minRttMs)) {
        concurrencyMinRtt.set({ name }, p.minRttMs);
      }
      return true;
    },
  };

  const subscriptions: Array<[string, (message: unknown, name: string | symbol) => void]> = [];
  for (const channel of COUNTED_MESH_CHANNELS) {
    const handle = handlers[channel];
    const listener = (message: unknown) => {
      // Synthetic traffic (the proxy's warm-up) is not counted.
      if (isUnobserved()) return;
      const ok = typeof message === "object" && message !== null && handle(message as Payload);
      if (!ok) invalid.inc({ channel });
    };
    diagnostics_channel.subscribe(channel, listener);
    subscriptions.push([channel, listener]);
  }
  return () => {
    for (const [channel, listener] of subscriptions)
      diagnostics_channel.unsubscribe(channel, listener);
  };
}
