import {
  failureAccrualConfig,
  failureRateConfig,
  peakEwmaConfig,
  pushbackConfig,
} from "@mesh/balancer";
import { RateLimiter } from "@mesh/limit";
import { RetryPolicy } from "@mesh/retry";
import { z } from "zod";
import { authzPolicySchema } from "../inbound/authz/schema.js";
import { parseHostPort } from "./address.js";
import { parseDuration } from "./duration.js";
import { checkSecurity } from "./security.js";

/*
 * Every leaf carries its own "expected …" message so that a problem reads
 * `<path>: expected <what>, got <value>` (the formatter in errors.ts appends the value).
 */

const DURATION_TEXT = /^\s*(?:\d+(?:\.\d+)?(?:ms|s|m|h)?)+\s*$/;

/** A duration with a unit (`500ms`, `2s`, `1m`) or a number of milliseconds; parses to ms. */
function duration(description: string) {
  const expected = "expected a duration such as 500ms, 2s or 1m";
  return z
    .union(
      [
        z.string().regex(DURATION_TEXT, { error: expected }),
        z.number().min(0, { error: expected }),
      ],
      { error: expected },
    )
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.issues.push({ code: "custom", message: expected, input: value });
        return z.NEVER;
      }
      return ms;
    })
    .describe(`${description} (a duration: \`500ms\`, \`2s\`, \`1m\`, or milliseconds)`);
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  const what =
    max === Number.MAX_SAFE_INTEGER
      ? `expected integer >= ${min}`
      : `expected integer in ${min}..${max}`;
  return z.int({ error: what }).min(min, { error: what }).max(max, { error: what });
}

function number(min: number, max: number) {
  const what = `expected a number in ${min}..${max}`;
  return z.number({ error: what }).min(min, { error: what }).max(max, { error: what });
}

function text(what = "expected a non-empty string") {
  return z.string({ error: what }).min(1, { error: what });
}

function bool() {
  return z.boolean({ error: "expected true or false" });
}

function list<T extends z.ZodType>(item: T) {
  return z.array(item, { error: "expected a list" });
}

/** `host:port` address (`127.0.0.1:4140`, `[::1]:4140`, `:4140`). */
function address(description: string) {
  const what = "expected host:port";
  return z
    .string({ error: what })
    .refine((v) => parseHostPort(v) !== undefined, { error: what })
    .describe(description);
}

function strict<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, { error: "expected an object" });
}

const retryCondition = z
  .string({ error: "expected a retry condition" })
  .regex(
    /^(?:5xx|gateway-error|[1-5]\d\d|[1-5]\d\d-[1-5]\d\d|cancelled|deadline-exceeded|internal|resource-exhausted|unavailable)$/,
    {
      error:
        "expected 5xx, gateway-error, a status such as 503, a range such as 500-504, or a gRPC status (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)",
    },
  );

/** @mesh/retry's own defaults (a policy built from no options): the config repeats none. */
/** Default of `kubernetes.readyTimeout` (also when the `kubernetes` section is left out). */
export const KUBERNETES_READY_TIMEOUT = 10_000;

/** Default `warmup.requests`: enough for V8 to optimize the per-request code (see warmup.ts). */
export const WARMUP_REQUESTS = 3_000;

/** Default `warmup.timeout`, ms. */
export const WARMUP_TIMEOUT = 5_000;

const RETRY_DEFAULTS = new RetryPolicy();
const BUDGET_DEFAULTS = RETRY_DEFAULTS.budget as NonNullable<RetryPolicy["budget"]>;

/** Retry budget, matching Linkerd's TPS budget. */
const budgetSchema = strict({
  ratio: number(0, 1000)
    .default(BUDGET_DEFAULTS.retryRatio)
    .describe("retries allowed per original request over the ttl window"),
  minPerSecond: integer(0)
    .default(BUDGET_DEFAULTS.minRetriesPerSecond)
    .describe("retries per second always allowed"),
  ttl: duration("window over which requests and retries are counted").default(BUDGET_DEFAULTS.ttl),
})
  .refine((b) => b.ttl >= 1_000 && b.ttl <= 60_000, {
    error: "expected a duration between 1s and 60s",
    path: ["ttl"],
  })
  .describe("retry budget shared by every request of the service (or route)");

const backoffSchema = strict({
  base: duration("first backoff (full jitter: a retry waits up to base × 2^n)").default(
    RETRY_DEFAULTS.backoff.base,
  ),
  max: duration("backoff cap").default(RETRY_DEFAULTS.backoff.max),
});

const retryFields = {
  on: list(retryCondition).describe("what to retry: HTTP status classes and gRPC statuses"),
  limit: z
    .int({ error: "expected integer >= 0" })
    .min(0, { error: "expected integer >= 0" })
    .max(100, { error: "expected integer <= 100" })
    .describe("maximum retries per request"),
  budget: budgetSchema,
  maxReplayBytes: integer(0).describe("request bodies up to this size are buffered for replay"),
  backoff: backoffSchema,
  nonIdempotent: bool().describe("also retry methods that are not idempotent (POST, PATCH)"),
};

const retrySchema = strict({
  on: retryFields.on.default(["5xx", "unavailable"]),
  limit: retryFields.limit.default(RETRY_DEFAULTS.limit),
  budget: retryFields.budget.prefault({}),
  maxReplayBytes: retryFields.maxReplayBytes.default(RETRY_DEFAULTS.maxReplayBytes),
  backoff: retryFields.backoff.prefault({}),
  nonIdempotent: retryFields.nonIdempotent.default(RETRY_DEFAULTS.retryNonIdempotent),
}).describe("retry policy");

const GRPC_METHOD = /^\/[^/\s]+\/(?:[^/\s*]+|\*)$/;

/** Hedging (gRPC A6): @mesh/retry's `hedge()`, used instead of retries where set. */
const hedgeSchema = strict({
  delay: duration("how long an attempt may go unanswered before a hedge goes to another endpoint"),
  maxAttempts: integer(2, 5)
    .default(2)
    .describe("most attempts per request, the original included"),
  nonFatal: list(retryCondition)
    .optional()
    .describe("answers that do not end the race (a hedge is sent at once); default: retry.on"),
  grpcMethods: list(
    z
      .string({ error: "expected a gRPC method such as /pkg.Service/Method or /pkg.Service/*" })
      .regex(GRPC_METHOD, {
        error: "expected a gRPC method such as /pkg.Service/Method or /pkg.Service/*",
      }),
  )
    .default([])
    .describe("gRPC methods that may be hedged (gRPC calls are hedged only when listed)"),
}).describe(
  "hedging: send the request again to another endpoint after `delay`, first answer wins, paid from the retry budget",
);

/** A route's retry settings override the service's field by field. */
const routeRetrySchema = strict({
  on: retryFields.on.optional(),
  limit: retryFields.limit.optional(),
  budget: retryFields.budget.optional(),
  maxReplayBytes: retryFields.maxReplayBytes.optional(),
  backoff: retryFields.backoff.optional(),
  nonIdempotent: retryFields.nonIdempotent.optional(),
}).describe("retry overrides for this route");

const timeoutSchema = strict({
  request: duration("deadline across all attempts; 504 when exceeded").optional(),
  perTry: duration("deadline for each attempt (retried when retries allow)").optional(),
  idle: duration("longest silence between response body chunks").optional(),
}).describe("timeouts");

const endpointSchema = z.union(
  [
    address("endpoint address"),
    strict({
      address: address("endpoint address"),
      weight: integer(0).optional(),
      identity: text().optional().describe("expected SPIFFE ID of the endpoint (mTLS)"),
      protocol: z.enum(["http1", "h2c"], { error: "expected http1 or h2c" }).optional(),
      zone: text().optional().describe("topology zone of the endpoint (zone-local balancing)"),
    }),
  ],
  { error: "expected host:port or { address: host:port }" },
);

/** A Kubernetes object name (an RFC 1123 DNS label). */
const kubeName = (what: string) =>
  text()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, {
      error: `expected a ${what} (lower-case letters, digits and '-')`,
    })
    .max(63, { error: `expected a ${what} of at most 63 characters` });

const discoverySchema = strict({
  static: list(endpointSchema).optional().describe("a fixed list of endpoints"),
  dns: strict({
    name: text().describe("host name to resolve (A/AAAA)"),
    port: integer(1, 65_535),
    interval: duration("re-resolution interval").default(5_000),
  })
    .optional()
    .describe("endpoints from DNS"),
  file: strict({ path: text().describe("JSON or YAML list of endpoints, watched") })
    .optional()
    .describe("endpoints from a watched file"),
  kubernetes: strict({
    service: kubeName("Service name"),
    namespace: kubeName("namespace").default("default"),
    port: z
      .union([kubeName("port name"), integer(1, 65_535)], {
        error: "expected a port name or a number in 1..65535",
      })
      .describe("the Service port, by name or number"),
  })
    .optional()
    .describe(
      "ready endpoints of a Kubernetes Service from its EndpointSlices (watched); with identity, each endpoint's SPIFFE ID from its Pod's service account",
    ),
})
  .refine(
    (d) => [d.static, d.dns, d.file, d.kubernetes].filter((x) => x !== undefined).length === 1,
    { error: "expected exactly one of static, dns, file or kubernetes" },
  )
  .describe("where the endpoints come from");

const backendSchema = strict({
  name: text(),
  weight: integer(0).default(1).describe("share of traffic relative to the other backends"),
  discovery: discoverySchema,
}).describe("a weighted backend of a traffic split");

/** A traffic split: at least one backend must take traffic (all weights 0 would send nothing). */
const backendsSchema = list(backendSchema).refine(
  (bs) => bs.length === 0 || bs.some((b) => b.weight > 0),
  { error: "expected at least one backend with weight > 0" },
);

const headerMatchSchema = z.union(
  [z.string(), strict({ exact: z.string().optional(), regex: z.string().optional() })],
  { error: "expected a string or { exact | regex }" },
);

const matchSchema = strict({
  path: text().optional().describe("exact path (no query)"),
  pathPrefix: text().optional().describe("path prefix, matched on segment boundaries"),
  methods: list(text()).optional().describe("HTTP methods (any when absent)"),
  headers: z
    .record(z.string(), headerMatchSchema, { error: "expected a map of header name to match" })
    .optional()
    .describe("request headers that must match"),
})
  .refine((m) => m.path === undefined || m.path.startsWith("/"), {
    error: "expected a path starting with /",
    path: ["path"],
  })
  .refine((m) => m.pathPrefix === undefined || m.pathPrefix.startsWith("/"), {
    error: "expected a path starting with /",
    path: ["pathPrefix"],
  });

const routeSchema = strict({
  name: text()
    .optional()
    .describe(
      "the route label of metrics, logs and tap; unique in its service, not 'default'; defaults to one derived from match (e.g. 'GET prefix:/api')",
    ),
  match: matchSchema.default({}),
  timeout: timeoutSchema.optional(),
  retry: routeRetrySchema.optional(),
  hedge: hedgeSchema.optional().describe("hedging for this route (replaces the service's)"),
  backends: backendsSchema.optional().describe("split for this route only"),
});

/** @mesh/balancer's own failure-accrual defaults (mode, success-rate window). */
const ACCRUAL = failureAccrualConfig(undefined);

/** @mesh/balancer's own `PeakEwma` and `FailureRate` defaults, in this schema's field names. */
const EWMA = peakEwmaConfig(undefined);
const FAILURE_RATE = failureRateConfig(undefined);
const EWMA_DEFAULTS = { decay: EWMA.decayMs, defaultRtt: EWMA.defaultRttMs };
const FAILURE_RATE_DEFAULTS = {
  decay: FAILURE_RATE.decayMs,
  prior: FAILURE_RATE.prior,
  failureCostFactor: FAILURE_RATE.failureCostFactor,
};
/** @mesh/balancer's pushback defaults, in this schema's field names. */
const PUSHBACK = pushbackConfig(undefined);
const PUSHBACK_DEFAULTS = { max: PUSHBACK.maxMs, costFactor: PUSHBACK.costFactor };
/** The zone overload threshold, as EndpointSet defaults it (@mesh/balancer does not export it). */
const LOCAL_ZONE_MAX_PENDING = 10;

/** A duration field that must fall in `min..max` ms (checked after parsing the unit). */
function boundedDuration(
  description: string,
  min: number,
  max: number,
  minText: string,
  maxText: string,
) {
  const what = `expected a duration between ${minText} and ${maxText}`;
  return duration(description).refine((ms) => ms >= min && ms <= max, { error: what });
}

/** Load-balancer tuning of a service: Peak-EWMA and the failure-rate cost. */
const balancerSchema = strict({
  ewma: strict({
    decay: boundedDuration(
      "time constant of the RTT estimate's decay (Linkerd: 10s)",
      1,
      3_600_000,
      "1ms",
      "1h",
    ).default(EWMA_DEFAULTS.decay),
    defaultRtt: boundedDuration(
      "RTT estimate a new endpoint starts with",
      1,
      60_000,
      "1ms",
      "60s",
    ).default(EWMA_DEFAULTS.defaultRtt),
  })
    .prefault({})
    .describe("Peak-EWMA latency estimate behind power-of-two-choices"),
  failureRate: strict({
    decay: boundedDuration(
      "time constant of the decay of the failure and response counts",
      1,
      3_600_000,
      "1ms",
      "1h",
    ).default(FAILURE_RATE_DEFAULTS.decay),
    prior: number(0, 1_000_000)
      .default(FAILURE_RATE_DEFAULTS.prior)
      .describe(
        "pseudo-successes added when the rate is read (one failure at low traffic reads as at most 1/(prior+1))",
      ),
    failureCostFactor: number(0, 100)
      .default(FAILURE_RATE_DEFAULTS.failureCostFactor)
      .describe("k in cost × exp(k × failure rate); 0 leaves failures out of the cost"),
  })
    .prefault({})
    .describe("failures raise an endpoint's cost so fast failures do not attract traffic"),
  pushback: strict({
    max: boundedDuration(
      "longest Retry-After / grpc-retry-pushback-ms honoured; 0 ignores pushback",
      0,
      3_600_000,
      "0ms",
      "1h",
    ).default(PUSHBACK_DEFAULTS.max),
    costFactor: number(1, 1e12)
      .default(PUSHBACK_DEFAULTS.costFactor)
      .describe("cost multiplier of an endpoint while its pushback lasts"),
  })
    .prefault({})
    .describe(
      "an endpoint answering Retry-After or grpc-retry-pushback-ms is avoided for that long",
    ),
  localZone: text()
    .optional()
    .describe(
      "prefer endpoints of this zone (default outbound.zone); spill over to all when none is ready or the zone is overloaded",
    ),
  localZoneMaxPending: number(0, 1_000_000)
    .default(LOCAL_ZONE_MAX_PENDING)
    .describe(
      "the local zone is overloaded while its ready endpoints average more than this many requests in flight",
    ),
}).describe("load-balancer tuning (defaults are @mesh/balancer's)");

/** A rate: requests per second, optionally with a burst (default one second's worth). */
function rateFields() {
  const rps = "expected a number > 0";
  return {
    requestsPerSecond: z
      .number({ error: rps })
      .gt(0, { error: rps })
      .max(1e9, { error: "expected a number <= 1000000000" })
      .describe("sustained requests per second"),
    burst: number(1, 1e9)
      .optional()
      .describe("requests admitted back to back after an idle period (default requestsPerSecond)"),
  };
}

/**
 * Hands a section to the @mesh/limit constructor it configures, so rules spanning fields
 * (a per-identity rate above the total, an identity in two overrides) are the library's
 * own, reported at the config path (`keys` is `identities` here).
 */
function checkedByLibrary(build: () => void, ctx: z.RefinementCtx): void {
  try {
    build();
  } catch (err) {
    const m = /^rateLimit((?:\.[A-Za-z]+|\[\d+\])*): (.*)$/s.exec((err as Error).message);
    if (m === null) {
      ctx.addIssue({ code: "custom", message: (err as Error).message, params: { complete: true } });
      return;
    }
    const path = [...(m[1] ?? "").matchAll(/\.([A-Za-z]+)|\[(\d+)\]/g)].map((x) =>
      x[2] !== undefined ? Number(x[2]) : x[1] === "keys" ? "identities" : (x[1] as string),
    );
    ctx.addIssue({ code: "custom", message: m[2] as string, path, params: { complete: true } });
  }
}

/** Inbound rate limits, Linkerd's `HTTPLocalRateLimitPolicy` (names as there). */
const inboundRateLimitSchema = strict({
  total: strict(rateFields()).optional().describe("one limit over every inbound request"),
  identity: strict(rateFields())
    .optional()
    .describe(
      "a limit per client identity (verified mTLS ID; plaintext clients are held to total only)",
    ),
  overrides: list(
    strict({
      ...rateFields(),
      identities: list(text())
        .min(1, { error: "expected at least one identity" })
        .describe("client SPIFFE IDs sharing this limit instead of identity's"),
    }),
  )
    .default([])
    .describe("limits for named clients, one shared by the identities of each entry"),
  maxIdentities: integer(1)
    .default(10_000)
    .describe("client identities whose state is kept (least recently used dropped)"),
})
  .superRefine((r, ctx) =>
    checkedByLibrary(() => {
      new RateLimiter(inboundRateLimiterOptions(r));
    }, ctx),
  )
  .describe("inbound rate limits (429 + retry-after; gRPC RESOURCE_EXHAUSTED)");

/** The @mesh/limit options of an inbound rate limit config. */
export function inboundRateLimiterOptions(
  r: InboundRateLimitShape,
): ConstructorParameters<typeof RateLimiter>[0] {
  return {
    name: "inbound",
    ...(r.total !== undefined ? { total: r.total } : {}),
    ...(r.identity !== undefined ? { identity: r.identity } : {}),
    ...(r.overrides.length > 0
      ? {
          overrides: r.overrides.map((o) => ({
            requestsPerSecond: o.requestsPerSecond,
            ...(o.burst !== undefined ? { burst: o.burst } : {}),
            keys: o.identities,
          })),
        }
      : {}),
    maxKeys: r.maxIdentities,
  };
}

interface RateShape {
  requestsPerSecond: number;
  burst?: number | undefined;
}
interface InboundRateLimitShape {
  total?: RateShape | undefined;
  identity?: RateShape | undefined;
  overrides: Array<RateShape & { identities: string[] }>;
  maxIdentities: number;
}

/** Inbound adaptive concurrency (a gradient limiter); every default is @mesh/limit's (Envoy's). */
const adaptiveConcurrencySchema = strict({
  sampleWindow: boundedDuration(
    "how often the limit is recomputed (default 100ms)",
    1,
    3_600_000,
    "1ms",
    "1h",
  ).optional(),
  percentile: z
    .number({ error: "expected a number in 0 (exclusive)..1" })
    .gt(0, { error: "expected a number in 0 (exclusive)..1" })
    .max(1, { error: "expected a number in 0 (exclusive)..1" })
    .optional()
    .describe("RTT percentile standing for a window (default 0.5)"),
  buffer: number(0, 10)
    .optional()
    .describe("latency over minRTT still taken as not queueing, a fraction (default 0.25)"),
  minRttInterval: boundedDuration(
    "time between minRTT measurements (default 60s)",
    1,
    86_400_000,
    "1ms",
    "24h",
  ).optional(),
  minRttJitter: number(0, 1).optional().describe("random spread of minRttInterval (default 0.15)"),
  minRttRequests: integer(1, 4096)
    .optional()
    .describe("requests measured per minRTT window (default 50)"),
  minLimit: integer(1, 1_000_000)
    .optional()
    .describe("lowest limit, and the concurrency while minRTT is measured (default 3)"),
  maxLimit: integer(1, 1_000_000).optional().describe("highest limit (default 1000)"),
})
  .refine((a) => a.maxLimit === undefined || a.maxLimit >= (a.minLimit ?? 3), {
    error: "expected at least minLimit",
    path: ["maxLimit"],
  })
  .describe(
    "adaptive concurrency limit for requests to the app (503 + mesh-proxy-error beyond it; never queues)",
  );

/** Outbound per-service rate limit. */
const outboundRateLimitSchema = strict({
  ...rateFields(),
  mode: z
    .enum(["fail-fast", "queue"], { error: "expected fail-fast or queue" })
    .default("fail-fast")
    .describe("beyond the rate: fail at once (429), or wait for a slot up to maxWait / maxQueue"),
  maxWait: boundedDuration("queue: longest wait for a slot", 0, 60_000, "0ms", "60s").default(
    1_000,
  ),
  maxQueue: integer(0).default(1_000).describe("queue: most requests waiting at once"),
}).describe("a rate limit on requests to the service (429 + retry-after beyond it)");

const serviceSchema = strict({
  name: text(),
  authorities: list(text())
    .optional()
    .describe("Host/:authority values routed to this service; defaults to [name]"),
  discovery: discoverySchema.optional(),
  protocol: z
    .enum(["auto", "http1", "h2c"], { error: "expected auto, http1 or h2c" })
    .default("auto")
    .describe("protocol towards endpoints; auto mirrors the client's"),
  timeout: timeoutSchema.default({}),
  retry: retrySchema.prefault({}),
  hedge: hedgeSchema.optional(),
  failureAccrual: strict({
    mode: z
      .enum(["consecutive-failures", "success-rate"], {
        error: "expected consecutive-failures or success-rate",
      })
      .default(ACCRUAL.mode)
      .describe("what ejects an endpoint: a run of failures, or a windowed success rate"),
    consecutiveFailures: integer(1).default(7),
    successRate: strict({
      threshold: number(0, 1)
        .default(ACCRUAL.successRate.threshold)
        .describe("success rate below which the endpoint is ejected"),
      minRequests: integer(1)
        .default(ACCRUAL.successRate.minRequests)
        .describe("requests the window must hold before the rate counts"),
      window: duration("window the success rate is measured over").default(
        ACCRUAL.successRate.windowMs,
      ),
    })
      .prefault({})
      .describe("mode success-rate: linkerd2's success-rate breaker"),
    minPenalty: duration("first ejection time").default(1_000),
    maxPenalty: duration("longest ejection time").default(60_000),
    jitter: number(0, 1).default(0.5),
  }).prefault({}),
  failFast: duration("how long a request waits for a ready endpoint").default(3_000),
  rateLimit: outboundRateLimitSchema.optional(),
  balancer: balancerSchema.prefault({}),
  routes: list(routeSchema).default([]),
  backends: backendsSchema.optional(),
})
  .refine((s) => s.discovery !== undefined || (s.backends?.length ?? 0) > 0, {
    error: "expected discovery or backends",
    path: ["discovery"],
  })
  .superRefine((s, ctx) => {
    // A route name is a metric label: two routes sharing one would merge their series.
    const seen = new Map<string, number>();
    s.routes.forEach((r, j) => {
      if (r.name === undefined) return;
      const other = seen.get(r.name);
      const message =
        r.name === "default"
          ? "expected a name other than 'default' (the label of requests no route matches)"
          : other !== undefined
            ? `expected a route name unique in its service (routes[${other}] has it too)`
            : undefined;
      if (message !== undefined)
        ctx.addIssue({ code: "custom", message, path: ["routes", j, "name"], input: r.name });
      else seen.set(r.name, j);
    });
  })
  .describe("an upstream service");

const limitsSchema = strict({
  maxHeaderBytes: integer(1024).default(16_384).describe("largest request head accepted (431)"),
  maxHeaderCount: integer(1).default(100).describe("most request headers accepted (431)"),
  headersTimeout: duration("time allowed to receive a request head (408)").default(10_000),
  requestTimeout: duration("time allowed to receive a whole HTTP/1.1 request; 0 = off").default(
    300_000,
  ),
  idleTimeout: duration("idle connections (keep-alive, h2 sessions) are closed after").default(
    60_000,
  ),
  detectTimeout: duration("time allowed for the first bytes of a connection").default(10_000),
  maxConnections: integer(1).default(10_000).describe("open client connections accepted"),
  maxConcurrentStreams: integer(1).default(1_000).describe("HTTP/2 streams per connection"),
});

/** An outbound opaque-TCP listener: the app connects to `listen`, bytes go to the service. */
const tcpRouteSchema = strict({
  name: text()
    .regex(/^[A-Za-z0-9._-]+$/, { error: "expected letters, digits, '.', '_' or '-'" })
    .describe("the service name, for metrics and logs"),
  listen: address("local address the app connects to, e.g. 127.0.0.1:6379"),
  targetPort: integer(1, 65_535)
    .optional()
    .describe(
      "port of the service at a meshed peer, sent in the transport header; default the listen port",
    ),
  discovery: discoverySchema,
  connectTimeout: duration("TCP connect + TLS handshake timeout").default(1_000),
  idleTimeout: duration("close after this long without a byte either way; 0 = never").default(
    3_600_000,
  ),
})
  .refine((t) => t.discovery.static !== undefined, {
    error: "expected static discovery (dns, file and kubernetes discovery are for HTTP services)",
    path: ["discovery"],
  })
  .describe("an opaque TCP service");

/** The `outbound` section (also parsed alone, for the warm-up pair). */
export const outboundSchema = strict({
  listen: address("where the app sends its requests").default("127.0.0.1:4140"),
  unknownAuthority: z
    .enum(["passthrough", "deny"], { error: "expected passthrough or deny" })
    .default("passthrough")
    .describe("what to do with requests for an authority no service claims"),
  maxConcurrentRequests: integer(1).default(10_000).describe("load shedding threshold (503)"),
  connectTimeout: duration("TCP connect timeout to endpoints").default(1_000),
  connectionsPerEndpoint: integer(1)
    .default(100)
    .describe(
      "HTTP/1.1 connections per endpoint; more requests queue (HTTP/2 endpoints multiplex one)",
    ),
  maxPendingPerEndpoint: integer(1)
    .default(1_000)
    .describe("requests in flight or queued per endpoint; beyond it: 503 endpoint overloaded"),
  zone: text()
    .optional()
    .describe(
      "the topology zone this proxy runs in (e.g. topology.kubernetes.io/zone); services prefer endpoints of this zone",
    ),
  requireIdentity: bool()
    .default(false)
    .describe(
      "refuse to send to endpoints without an identity (no plaintext); needs identity to be configured",
    ),
  meshHttp1: z
    .enum(["h2", "http1"], { error: "expected h2 or http1" })
    .default("h2")
    .describe(
      "how HTTP/1.x requests cross to a meshed endpoint: h2 = multiplexed on one mTLS HTTP/2 connection per peer (mesh-orig-proto restores HTTP/1 for the app, as Linkerd); http1 = a pool of mTLS HTTP/1.1 keep-alive connections (up to connectionsPerEndpoint). HTTP/2 and gRPC always use h2",
    ),
  services: list(serviceSchema).default([]),
  tcp: list(tcpRouteSchema)
    .default([])
    .describe("opaque TCP listeners: a local port the app connects to, forwarded to a service"),
  limits: limitsSchema.prefault({}),
})
  .superRefine((o, ctx) => {
    const names = new Map<string, number>();
    const authorities = new Map<string, number>();
    o.services.forEach((s, i) => {
      const seen = names.get(s.name);
      if (seen !== undefined) {
        ctx.addIssue({
          code: "custom",
          message: `expected a unique service name (services[${seen}] has it too)`,
          path: ["services", i, "name"],
          input: s.name,
        });
      } else names.set(s.name, i);
      for (const [j, a] of (s.authorities ?? [s.name]).entries()) {
        const key = a.toLowerCase();
        const other = authorities.get(key);
        if (other !== undefined && other !== i) {
          ctx.addIssue({
            code: "custom",
            message: `expected an authority no other service claims (services[${other}] has it)`,
            path: ["services", i, "authorities", j],
            input: a,
          });
        } else authorities.set(key, i);
      }
    });
  })
  // The proxy's zone is every service's local zone unless the service names its own.
  .transform((o) => {
    const zone = o.zone;
    if (zone === undefined) return o;
    return {
      ...o,
      services: o.services.map((s) =>
        s.balancer.localZone === undefined
          ? { ...s, balancer: { ...s.balancer, localZone: zone } }
          : s,
      ),
    };
  })
  .describe("the listener the local app talks to");

/** Linkerd's default opaque ports: server-speaks-first and binary protocols. */
export const DEFAULT_OPAQUE_PORTS = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211];

/** The `inbound` section (also parsed alone, for the warm-up pair). */
export const inboundSchema = strict({
  listen: address("where peers connect").default("0.0.0.0:4143"),
  app: address("the local application"),
  appProtocol: z
    .enum(["auto", "http1", "h2c"], { error: "expected auto, http1 or h2c" })
    .default("auto")
    .describe("protocol towards the app; auto mirrors the client's (gRPC needs h2c)"),
  maxConcurrentRequests: integer(1).default(10_000).describe("load shedding threshold (503)"),
  connectTimeout: duration("TCP connect timeout to the app").default(1_000),
  appConnections: integer(1)
    .default(100)
    .describe("HTTP/1.1 connections to the app; more requests queue (h2c multiplexes one)"),
  timeout: timeoutSchema.default({}),
  limits: limitsSchema.prefault({}),
  rateLimit: inboundRateLimitSchema.optional(),
  adaptiveConcurrency: adaptiveConcurrencySchema.optional(),
  policy: authzPolicySchema.prefault({}),
  opaquePorts: list(integer(1, 65_535))
    .default(DEFAULT_OPAQUE_PORTS)
    .describe("target ports proxied as raw TCP (mTLS between proxies, transport header)"),
  ports: z
    .record(
      z.string().regex(/^[1-9][0-9]{0,4}$/, { error: "expected a port number" }),
      address("local address"),
      {
        error: "expected a map of target port to host:port",
      },
    )
    .default({})
    .describe(
      "where opaque TCP for a target port goes; default the app's host at that port (127.0.0.1:<port>)",
    ),
  tcpIdleTimeout: duration("opaque TCP connections idle this long are closed; 0 = never").default(
    3_600_000,
  ),
}).describe("the listener peers talk to; forwards to the local app");

/** Where the proxy's SVIDs can come from; a config names exactly one. */
const identitySources = ["issuer", "files", "workloadApi"] as const;

const identitySchema = strict({
  trustDomain: text().describe("this workload's trust domain, e.g. example.org"),
  id: text().describe("this workload's SPIFFE ID, in trustDomain"),
  issuer: strict({
    url: text().regex(/^https?:\/\//, { error: "expected an http(s):// URL" }),
    tokenFile: text().describe("bearer token file, re-read for each request"),
    bundleFile: text()
      .optional()
      .describe(
        "PEM CA that verifies an https issuer (re-read for every request to the issuer, so a rotated CA applies without a restart)",
      ),
    bundleRefresh: duration(
      "how often to check the issuer's trust bundle (GET /v1/bundle); a change renews the SVID at once; 0 = only with renewals",
    ).default(60_000),
  })
    .optional()
    .describe("get SVIDs from an issuer (CSR + token)"),
  files: strict({ cert: text(), key: text(), bundle: text() })
    .optional()
    .describe("read the SVID, key and trust bundle from watched PEM files"),
  workloadApi: strict({
    socket: text()
      .regex(/^(unix:\/\/\/|unix:(?!\/\/)|(?![a-z][a-z0-9+.-]*:))/i, {
        error: "expected a Unix socket path or unix:///absolute/path (tcp is not supported)",
      })
      .describe(
        "the agent's Unix socket: a path (relative to the config file) or unix:///absolute/path",
      ),
  })
    .optional()
    .describe(
      "take SVIDs and the trust bundle from a SPIFFE Workload API (a SPIRE agent): FetchX509SVID over a Unix socket, rotated as the agent pushes",
    ),
  renewal: strict({
    fraction: number(0.1, 0.95).default(0.7).describe("renew after this share of the lifetime"),
    min: duration("shortest time between renewals").default(10_000),
    max: duration("longest time between renewals").default(86_400_000),
    retryInitial: duration("first retry after a failed renewal (doubles)").default(1_000),
    retryMax: duration("longest retry delay").default(30_000),
  })
    .prefault({})
    .describe("certificate renewal timing"),
})
  .superRefine((i, ctx) => {
    const given = identitySources.filter((k) => i[k] !== undefined);
    if (given.length === 1) return;
    ctx.addIssue({
      code: "custom",
      message: `expected exactly one of issuer, files or workloadApi, got ${given.length === 0 ? "none" : given.join(" and ")}`,
      params: { complete: true },
    });
  })
  .describe("this proxy's workload identity (mTLS)");

/** `admin.tap`: who may watch live requests on `GET /tap`, and what they see. */
const tapSchema = strict({
  enabled: bool().default(true).describe("serve GET /tap (live requests as NDJSON)"),
  token: text()
    .min(16, { error: "expected a token of at least 16 characters" })
    .optional()
    .describe(
      "when set, /tap needs Authorization: Bearer <token> and is open to any client; when absent, loopback clients only",
    ),
  maxQueue: integer(1, 100_000)
    .default(1_000)
    .describe("lines a tap stream holds for a slow reader; more are dropped and counted"),
  headers: list(text())
    .default([])
    .transform((names) => names.map((n) => n.toLowerCase()))
    .describe("request headers whose values tap shows (none by default; bodies never)"),
});

/** The proxy's configuration schema (zod 4). Parsing yields {@link ProxyConfig}. */
export const configSchema = strict({
  $schema: z.string().optional().describe("JSON Schema reference for editors"),
  proxyId: text()
    .regex(/^[A-Za-z0-9._-]+$/, { error: "expected letters, digits, '.', '_' or '-'" })
    .optional()
    .describe("name of this proxy in Via headers (loop detection); random when absent"),
  admin: strict({
    listen: address("admin server").default("127.0.0.1:4191"),
    shutdownEndpoint: bool().default(true).describe("enable POST /shutdown (loopback only)"),
    tap: tapSchema.prefault({}),
  }).prefault({}),
  log: strict({
    level: z
      .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"], {
        error: "expected trace, debug, info, warn, error, fatal or silent",
      })
      .default("info"),
    accessLog: bool().default(false).describe("log one line per request"),
  }).prefault({}),
  shutdown: strict({
    gracePeriod: duration("how long in-flight requests may finish on shutdown").default(30_000),
  }).prefault({}),
  identity: identitySchema.optional(),
  warmup: strict({
    requests: integer(0, 100_000)
      .default(WARMUP_REQUESTS)
      .describe(
        "requests sent through a private loopback outbound → inbound pair before /ready, so the JIT has optimized the request path before real traffic comes; 0 = no warm-up",
      ),
    timeout: duration(
      "the warm-up's time budget: the proxy turns ready when it ends, even with requests left",
    ).default(WARMUP_TIMEOUT),
  })
    .prefault({})
    .describe("warm the request path before /ready (a fresh proxy is slow for its first requests)"),
  kubernetes: strict({
    kubeconfig: text()
      .optional()
      .describe(
        "kubeconfig file (relative to the working directory); default: in-cluster inside a pod, else $KUBECONFIG or ~/.kube/config",
      ),
    context: text().optional().describe("kubeconfig context; default its current context"),
    readyTimeout: duration(
      "how long /ready waits at start for the first list of every discovery.kubernetes Service; then ready anyway, with a warning",
    ).default(KUBERNETES_READY_TIMEOUT),
  })
    .optional()
    .describe("how discovery.kubernetes reaches the Kubernetes API server"),
  outbound: outboundSchema.optional(),
  inbound: inboundSchema.optional(),
})
  // Cross-field checks run even when some fields are invalid, so `check` lists every
  // problem in one round (checkSecurity skips the parts already reported).
  .superRefine(checkSecurity, {
    when: (payload) =>
      payload.value !== null && typeof payload.value === "object" && !Array.isArray(payload.value),
  })
  .describe("@mesh/proxy configuration");

/** The parsed, defaulted configuration (durations in milliseconds). */
export type ProxyConfig = z.output<typeof configSchema>;
/** The configuration as written by users (YAML/JSON). */
export type ProxyConfigInput = z.input<typeof configSchema>;
/** A parsed outbound service. */
export type ServiceConfig = ProxyConfig extends { outbound?: infer O }
  ? O extends { services: (infer S)[] }
    ? S
    : never
  : never;
/** A parsed route of a service. */
export type RouteConfig = ServiceConfig["routes"][number];
/** Parsed discovery settings. */
export type DiscoveryConfig = NonNullable<ServiceConfig["discovery"]>;
/** Parsed retry settings of a service. */
export type RetryConfig = ServiceConfig["retry"];
/** Parsed hedging settings of a service or route. */
export type HedgeConfig = NonNullable<ServiceConfig["hedge"]>;
/** Parsed timeouts. */
export type TimeoutConfig = ServiceConfig["timeout"];
/** Parsed listener limits. */
export type LimitsConfig = NonNullable<ProxyConfig["inbound"]>["limits"];
/** Parsed inbound settings. */
export type InboundConfig = NonNullable<ProxyConfig["inbound"]>;
/** Parsed outbound settings. */
export type OutboundConfig = NonNullable<ProxyConfig["outbound"]>;
/** Parsed identity settings. */
export type IdentitySettings = NonNullable<ProxyConfig["identity"]>;
/** Parsed inbound authorization policy. */
export type PolicyConfig = InboundConfig["policy"];
/** A parsed outbound opaque-TCP listener. */
export type TcpRouteConfig = OutboundConfig["tcp"][number];
/** Parsed load-balancer tuning of a service. */
export type BalancerConfig = ServiceConfig["balancer"];
/** A parsed weighted backend. */
export type BackendConfig = NonNullable<ServiceConfig["backends"]>[number];

export type InboundRateLimitConfig = NonNullable<InboundConfig["rateLimit"]>;

export type AdaptiveConcurrencyConfig = NonNullable<InboundConfig["adaptiveConcurrency"]>;

export type OutboundRateLimitConfig = NonNullable<ServiceConfig["rateLimit"]>;
