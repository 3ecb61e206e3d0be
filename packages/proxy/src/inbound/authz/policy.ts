import { MeshError } from "@mesh/core";
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from "@mesh/tls-identity";
import { describeValue, problemsFromIssues } from "../../config/errors.js";
import { pathOf, RouteMatch } from "../../http/route-match.js";
import { type IpAddress, type IpNetwork, parseIpAddress, parseNetwork } from "./cidr.js";
import { type AuthzDecisionEvent, authzDecisionChannel } from "./events.js";
import { compileIdentities, type IdentityMatcher } from "./identity-match.js";
import { authzPolicySchema, type DefaultPolicy, type ValidAuthzPolicy } from "./schema.js";

/** Options of {@link compileAuthzPolicy}. @public */
export interface AuthzCompileOptions {
  /** The proxy's own trust domain; required by `cluster-authenticated`. */
  trustDomain?: string;
  /** Config path of the policy, prefixed to error paths. Default `policy`. */
  path?: string;
}

/** What the evaluator needs to know about a connection or request. @public */
export interface AuthzRequest {
  /** The client's verified SPIFFE ID (from mTLS); `undefined` when unauthenticated. */
  clientId?: SpiffeId | string | undefined;
  /** The client's IP address (`socket.remoteAddress`). */
  remoteAddress: string | undefined;
  /** The inbound port (for events and metrics). */
  port: number;
  /** `tcp` for opaque connections; `http`/`grpc` for requests. */
  protocol: "http" | "grpc" | "tcp";
  /** The request method (HTTP/gRPC). */
  method?: string;
  /** The request path, query allowed (HTTP/gRPC). */
  path?: string;
}

/**
 * An authorization decision. Decisions are shared, frozen objects: compare fields, do not
 * mutate.
 *
 * @public
 */
export interface AuthzDecision {
  readonly allowed: boolean;
  /** True only for the `audit` default: allowed, but no rule or stricter default admitted it. */
  readonly audit: boolean;
  /**
   * Why: `rules[<i>]` (allowed by that rule), `default:<policy>` (allowed by the default),
   * `unauthenticated` (the default needs an identity and the client has none),
   * `foreign-trust-domain` (`cluster-authenticated` and the client is from another trust
   * domain), `default:deny`.
   */
  readonly reason: string;
  /** Index of the rule that allowed, if any. */
  readonly rule?: number;
  /** Name of the matching rule route (`prefix:/api`, `GET exact:/healthz`), if any. */
  readonly route?: string;
}

/** One problem in a policy config: the field path and `expected <what>, got <value>`. @public */
export interface AuthzConfigProblem {
  path: string;
  message: string;
}

/**
 * Thrown by {@link compileAuthzPolicy} for an invalid policy; lists every problem.
 * `code` is `MESH_AUTHZ_CONFIG_INVALID`.
 *
 * @public
 */
export class AuthzConfigError extends MeshError<"MESH_AUTHZ_CONFIG_INVALID"> {
  readonly problems: readonly AuthzConfigProblem[];
  constructor(problems: AuthzConfigProblem[]) {
    super("MESH_AUTHZ_CONFIG_INVALID", problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
    this.name = "AuthzConfigError";
    this.problems = problems;
  }
}

interface NetworkMatcher {
  net: IpNetwork;
  except: IpNetwork[];
}

interface CompiledRule {
  identities?: IdentityMatcher;
  networks?: NetworkMatcher[];
  routes?: RouteMatch[];
  /** Decision when the rule matched without routes; per-route decisions otherwise. */
  decision: AuthzDecision;
  routeDecisions?: AuthzDecision[];
}

function decision(allowed: boolean, audit: boolean, reason: string, rule?: number, route?: string) {
  const d: { -readonly [K in keyof AuthzDecision]: AuthzDecision[K] } = { allowed, audit, reason };
  if (rule !== undefined) d.rule = rule;
  if (route !== undefined) d.route = route;
  return Object.freeze(d);
}

const ALLOW_ANY = decision(true, false, "default:all-unauthenticated");
const ALLOW_AUTH = decision(true, false, "default:all-authenticated");
const ALLOW_CLUSTER = decision(true, false, "default:cluster-authenticated");
const DENY_UNAUTH = decision(false, false, "unauthenticated");
const DENY_FOREIGN = decision(false, false, "foreign-trust-domain");
const DENY = decision(false, false, "default:deny");
const AUDIT = decision(true, true, "default:audit");

/**
 * A compiled inbound authorization policy: validate and compile once (at config load),
 * then {@link AuthzPolicy.evaluate} per connection or request. Rules grant access; when
 * none does, the default decides.
 *
 * @public
 */
export class AuthzPolicy {
  /** The default policy in effect. */
  readonly defaultPolicy: DefaultPolicy;
  /** The proxy's trust domain, if given. */
  readonly trustDomain: string | undefined;
  /**
   * Whether any unauthenticated (plaintext) client could ever be admitted: the default is
   * `all-unauthenticated` or `audit`, or a rule has no `identities`. When false the proxy
   * may refuse plaintext connections without reading them.
   */
  readonly admitsUnauthenticated: boolean;
  readonly #rules: CompiledRule[];
  readonly #needsId: boolean;

  /** @internal use {@link compileAuthzPolicy}. */
  constructor(
    defaultPolicy: DefaultPolicy,
    trustDomain: string | undefined,
    rules: CompiledRule[],
  ) {
    this.defaultPolicy = defaultPolicy;
    this.trustDomain = trustDomain;
    this.#rules = rules;
    this.#needsId =
      defaultPolicy === "cluster-authenticated" ||
      rules.some((r) => r.identities !== undefined && !r.identities.any);
    this.admitsUnauthenticated =
      defaultPolicy === "all-unauthenticated" ||
      defaultPolicy === "audit" ||
      rules.some((r) => r.identities === undefined);
  }

  /** Decides for one connection (`protocol: "tcp"`) or request. Publishes nothing. */
  evaluate(request: AuthzRequest): AuthzDecision {
    const raw = request.clientId;
    let id: SpiffeId | undefined;
    let authenticated = false;
    if (raw) {
      authenticated = true;
      if (typeof raw !== "string") id = raw;
      else if (this.#needsId) {
        id = parseClientId(raw);
        // Not a SPIFFE ID: nothing to match it with, so it authenticates nobody.
        if (id === undefined) authenticated = false;
      }
    }
    let address: IpAddress | undefined | null = null;
    const isTcp = request.protocol === "tcp";
    for (const rule of this.#rules) {
      if (rule.identities) {
        if (!authenticated) continue;
        if (!rule.identities.any && (id === undefined || !rule.identities.matches(id))) continue;
      }
      if (rule.networks) {
        if (address === null)
          address =
            request.remoteAddress === undefined ? undefined : parseIpAddress(request.remoteAddress);
        if (address === undefined || !matchesNetworks(rule.networks, address)) continue;
      }
      if (!rule.routes) return rule.decision;
      if (isTcp) continue;
      const r = matchRoute(rule.routes, request.method, request.path);
      if (r !== -1) return (rule.routeDecisions as AuthzDecision[])[r] as AuthzDecision;
    }
    switch (this.defaultPolicy) {
      case "all-unauthenticated":
        return ALLOW_ANY;
      case "all-authenticated":
        return authenticated ? ALLOW_AUTH : DENY_UNAUTH;
      case "cluster-authenticated":
        if (!authenticated || id === undefined) return DENY_UNAUTH;
        return id.trustDomain === this.trustDomain ? ALLOW_CLUSTER : DENY_FOREIGN;
      case "deny":
        return DENY;
      default:
        return AUDIT;
    }
  }

  /**
   * {@link AuthzPolicy.evaluate} plus a `mesh:authz:decision` event (built only when the
   * channel has subscribers). This is what the proxy calls.
   */
  authorize(request: AuthzRequest): AuthzDecision {
    const d = this.evaluate(request);
    if (authzDecisionChannel.hasSubscribers) {
      const event: AuthzDecisionEvent = {
        allowed: d.allowed,
        audit: d.audit,
        network: request.remoteAddress ?? "",
        protocol: request.protocol,
        port: request.port,
        reason: d.reason,
      };
      if (request.clientId) event.clientId = String(request.clientId);
      if (d.route !== undefined) event.route = d.route;
      authzDecisionChannel.publish(event);
    }
    return d;
  }
}

function parseClientId(raw: string): SpiffeId | undefined {
  try {
    return parseSpiffeId(raw);
  } catch {
    return undefined;
  }
}

function matchesNetworks(networks: NetworkMatcher[], address: IpAddress): boolean {
  for (const n of networks) {
    if (!n.net.contains(address)) continue;
    let excluded = false;
    for (const e of n.except)
      if (e.contains(address)) {
        excluded = true;
        break;
      }
    if (!excluded) return true;
  }
  return false;
}

function matchRoute(
  routes: readonly RouteMatch[],
  method: string | undefined,
  rawPath: string | undefined,
): number {
  if (rawPath === undefined) return -1;
  const path = pathOf(rawPath);
  for (let i = 0; i < routes.length; i++)
    if ((routes[i] as RouteMatch).matches(method, path)) return i;
  return -1;
}

/**
 * Validates (with {@link authzPolicySchema}, the one validator the proxy config uses too)
 * and compiles a policy config.
 *
 * @throws AuthzConfigError listing every problem as `<path>: expected <what>, got <value>`.
 * @public
 */
export function compileAuthzPolicy(
  config: unknown,
  options: AuthzCompileOptions = {},
): AuthzPolicy {
  const base = options.path ?? "policy";
  const parsed = authzPolicySchema.safeParse(config ?? {}, { reportInput: true });
  const problems: AuthzConfigProblem[] = parsed.success
    ? []
    : problemsFromIssues(parsed.error.issues, config).map((p) => ({
        path: p.path === "" ? base : `${base}${p.path.startsWith("[") ? "" : "."}${p.path}`,
        message: p.message,
      }));
  let trustDomain: string | undefined;
  if (options.trustDomain !== undefined) {
    try {
      trustDomain = parseTrustDomain(options.trustDomain);
    } catch {
      problems.push({
        path: "trustDomain",
        message: `expected a SPIFFE trust domain, got ${describeValue(options.trustDomain)}`,
      });
    }
  }
  if (
    parsed.data?.default === "cluster-authenticated" &&
    trustDomain === undefined &&
    options.trustDomain === undefined
  )
    problems.push({
      path: `${base}.default`,
      message: `expected identity.trustDomain to be configured for cluster-authenticated, got nothing`,
    });
  if (problems.length > 0 || parsed.data === undefined) throw new AuthzConfigError(problems);
  return new AuthzPolicy(
    parsed.data.default,
    trustDomain,
    parsed.data.rules.map((r, i) => compileRule(r, i)),
  );
}

/** Compiles one validated rule (the schema has checked every field). */
function compileRule(r: ValidAuthzPolicy["rules"][number], index: number): CompiledRule {
  const reason = `rules[${index}]`;
  const rule: CompiledRule = { decision: decision(true, false, reason, index) };
  if (r.allow.identities !== undefined)
    rule.identities = compileIdentities(r.allow.identities, "identities");
  if (r.allow.networks !== undefined)
    rule.networks = r.allow.networks.map((n) =>
      typeof n === "string"
        ? { net: parseNetwork(n), except: [] }
        : { net: parseNetwork(n.cidr), except: (n.except ?? []).map((e) => parseNetwork(e)) },
    );
  if (r.routes !== undefined) {
    const routes = r.routes.map((route) => new RouteMatch(route));
    rule.routes = routes;
    rule.routeDecisions = routes.map((m) => decision(true, false, reason, index, m.label));
  }
  return rule;
}
