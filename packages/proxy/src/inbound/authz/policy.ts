import { parseSpiffeId, parseTrustDomain, type SpiffeId } from "@mesh/tls-identity";
import {
  type IpAddress,
  type IpNetwork,
  networkContains,
  parseIpAddress,
  parseNetwork,
} from "./cidr.js";
import { type AuthzDecisionEvent, authzDecisionChannel } from "./events.js";
import { compileIdentities, type IdentityMatcher } from "./identity-match.js";

/**
 * What happens when no rule allows a client:
 * - `all-unauthenticated`: allow everyone (Linkerd's default);
 * - `all-authenticated`: allow clients with a verified SPIFFE ID (any trust domain the
 *   bundle trusts);
 * - `cluster-authenticated`: allow clients with a verified SPIFFE ID in the proxy's own
 *   trust domain (`trustDomain` compile option); we have no Kubernetes cluster networks,
 *   so the trust domain is what "the cluster" means here;
 * - `deny`: allow nobody;
 * - `audit`: allow everybody but mark the decision `audit: true` (what would be denied).
 *
 * @public
 */
export type DefaultPolicy =
  | "all-unauthenticated"
  | "all-authenticated"
  | "cluster-authenticated"
  | "deny"
  | "audit";

/** The default policies, in documentation order. @public */
export const DEFAULT_POLICIES: readonly DefaultPolicy[] = [
  "all-unauthenticated",
  "all-authenticated",
  "cluster-authenticated",
  "deny",
  "audit",
];

/** A network entry: a CIDR string, or a CIDR with excluded sub-networks. @public */
export type NetworkConfig = string | { cidr: string; except?: string[] };

/** A route a rule is limited to: exact `path` or `pathPrefix` (segment-wise), optional methods. @public */
export interface RouteConfig {
  path?: string;
  pathPrefix?: string;
  methods?: string[];
}

/**
 * One allow rule. With both `identities` and `networks`, a client must match both. With
 * `routes`, the rule applies only to HTTP/gRPC requests on one of those routes (never to
 * opaque TCP).
 *
 * @public
 */
export interface AuthzRuleConfig {
  allow: { identities?: string[]; networks?: NetworkConfig[] };
  routes?: RouteConfig[];
}

/** An inbound authorization policy as written in the proxy config. @public */
export interface AuthzPolicyConfig {
  /** Decides when no rule allows. Default `all-unauthenticated`. */
  default?: DefaultPolicy;
  /** Allow rules, checked in order; the first that admits the client wins. */
  rules?: AuthzRuleConfig[];
}

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
  /** Route label of the matching rule route (`prefix:/api`, `exact:/healthz`), if any. */
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
export class AuthzConfigError extends TypeError {
  readonly code = "MESH_AUTHZ_CONFIG_INVALID";
  readonly problems: readonly AuthzConfigProblem[];
  constructor(problems: AuthzConfigProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
    this.name = "AuthzConfigError";
    this.problems = problems;
  }
}

interface NetworkMatcher {
  net: IpNetwork;
  except: IpNetwork[];
}

interface RouteMatcher {
  exact?: string;
  prefix?: string;
  methods?: Set<string>;
  label: string;
}

interface CompiledRule {
  identities?: IdentityMatcher;
  networks?: NetworkMatcher[];
  routes?: RouteMatcher[];
  /** Decision when the rule matched without routes; per-route decisions otherwise. */
  decision: AuthzDecision;
  routeDecisions?: AuthzDecision[];
}

const show = (v: unknown): string => {
  if (v === undefined) return "nothing";
  try {
    const t = JSON.stringify(v) ?? String(v);
    return t.length > 60 ? `${t.slice(0, 57)}...` : t;
  } catch {
    return String(v);
  }
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

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
  routes: RouteMatcher[],
  method: string | undefined,
  rawPath: string | undefined,
): number {
  if (rawPath === undefined) return -1;
  const q = rawPath.indexOf("?");
  const path = q === -1 ? rawPath : rawPath.slice(0, q);
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] as RouteMatcher;
    if (r.methods && (method === undefined || !r.methods.has(method.toUpperCase()))) continue;
    if (r.exact !== undefined) {
      if (path !== r.exact) continue;
    } else if (r.prefix !== undefined && r.prefix !== "/") {
      if (!path.startsWith(r.prefix)) continue;
      const next = path.charCodeAt(r.prefix.length);
      if (!Number.isNaN(next) && next !== 47 /* "/" */) continue;
    }
    return i;
  }
  return -1;
}

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Validates and compiles a policy config.
 *
 * @throws AuthzConfigError listing every problem as `<path>: expected <what>, got <value>`.
 * @public
 */
export function compileAuthzPolicy(
  config: unknown,
  options: AuthzCompileOptions = {},
): AuthzPolicy {
  const base = options.path ?? "policy";
  const problems: AuthzConfigProblem[] = [];
  const problem = (path: string, what: string, value: unknown) =>
    problems.push({ path, message: `expected ${what}, got ${show(value)}` });
  const cfg = config === undefined ? {} : config;
  if (!isObject(cfg)) {
    problem(base, "a policy object { default, rules }", cfg);
    throw new AuthzConfigError(problems);
  }
  for (const key of Object.keys(cfg))
    if (key !== "default" && key !== "rules")
      problem(`${base}.${key}`, "no such field (default, rules)", cfg[key]);
  let def: DefaultPolicy = "all-unauthenticated";
  if (cfg.default !== undefined) {
    if (DEFAULT_POLICIES.includes(cfg.default as DefaultPolicy)) def = cfg.default as DefaultPolicy;
    else problem(`${base}.default`, `one of ${DEFAULT_POLICIES.join(", ")}`, cfg.default);
  }
  let trustDomain: string | undefined;
  if (options.trustDomain !== undefined) {
    try {
      trustDomain = parseTrustDomain(options.trustDomain);
    } catch {
      problem("trustDomain", "a SPIFFE trust domain", options.trustDomain);
    }
  }
  if (
    def === "cluster-authenticated" &&
    trustDomain === undefined &&
    options.trustDomain === undefined
  )
    problems.push({
      path: `${base}.default`,
      message: `expected identity.trustDomain to be configured for cluster-authenticated, got nothing`,
    });
  const rules: CompiledRule[] = [];
  if (cfg.rules !== undefined) {
    if (!Array.isArray(cfg.rules)) problem(`${base}.rules`, "an array of rules", cfg.rules);
    else
      cfg.rules.forEach((r, i) => {
        const c = compileRule(r, `${base}.rules[${i}]`, i, problems, problem);
        if (c) rules.push(c);
      });
  }
  if (problems.length > 0) throw new AuthzConfigError(problems);
  return new AuthzPolicy(def, trustDomain, rules);
}

function compileRule(
  r: unknown,
  at: string,
  index: number,
  problems: AuthzConfigProblem[],
  problem: (path: string, what: string, value: unknown) => void,
): CompiledRule | undefined {
  if (!isObject(r)) {
    problem(at, "a rule { allow, routes? }", r);
    return undefined;
  }
  for (const key of Object.keys(r))
    if (key !== "allow" && key !== "routes")
      problem(`${at}.${key}`, "no such field (allow, routes)", r[key]);
  const allow = r.allow;
  const rule: Partial<CompiledRule> = {};
  if (!isObject(allow)) {
    problem(`${at}.allow`, "an object with identities and/or networks", allow);
  } else {
    for (const key of Object.keys(allow))
      if (key !== "identities" && key !== "networks")
        problem(`${at}.allow.${key}`, "no such field (identities, networks)", allow[key]);
    if (allow.identities === undefined && allow.networks === undefined)
      problem(`${at}.allow`, "at least one of identities, networks", allow);
    if (allow.identities !== undefined) {
      if (Array.isArray(allow.identities) && allow.identities.length === 0)
        problem(`${at}.allow.identities`, "a non-empty array", allow.identities);
      else
        try {
          rule.identities = compileIdentities(allow.identities, `${at}.allow.identities`);
        } catch (err) {
          pushError(problems, err);
        }
    }
    if (allow.networks !== undefined) {
      if (!Array.isArray(allow.networks) || allow.networks.length === 0)
        problem(`${at}.allow.networks`, "a non-empty array of CIDR networks", allow.networks);
      else
        rule.networks = compileNetworks(allow.networks, `${at}.allow.networks`, problems, problem);
    }
  }
  if (r.routes !== undefined) {
    if (!Array.isArray(r.routes) || r.routes.length === 0)
      problem(`${at}.routes`, "a non-empty array of routes", r.routes);
    else
      rule.routes = r.routes.map((route, j) => compileRoute(route, `${at}.routes[${j}]`, problem));
  }
  const reason = `rules[${index}]`;
  rule.decision = decision(true, false, reason, index);
  if (rule.routes)
    rule.routeDecisions = rule.routes.map((m) => decision(true, false, reason, index, m.label));
  return rule as CompiledRule;
}

function pushError(problems: AuthzConfigProblem[], err: unknown): void {
  const text = err instanceof Error ? err.message : String(err);
  const colon = text.indexOf(": ");
  problems.push(
    colon === -1
      ? { path: "", message: text }
      : { path: text.slice(0, colon), message: text.slice(colon + 2) },
  );
}

function compileNetworks(
  list: unknown[],
  at: string,
  problems: AuthzConfigProblem[],
  problem: (path: string, what: string, value: unknown) => void,
): NetworkMatcher[] {
  const out: NetworkMatcher[] = [];
  list.forEach((entry, i) => {
    const p = `${at}[${i}]`;
    try {
      if (typeof entry === "string") {
        out.push({ net: parseNetwork(entry, p), except: [] });
        return;
      }
      if (!isObject(entry)) {
        problem(p, "a CIDR string or { cidr, except }", entry);
        return;
      }
      for (const key of Object.keys(entry))
        if (key !== "cidr" && key !== "except")
          problem(`${p}.${key}`, "no such field (cidr, except)", entry[key]);
      const net = parseNetwork(entry.cidr, `${p}.cidr`);
      const except: IpNetwork[] = [];
      if (entry.except !== undefined) {
        if (!Array.isArray(entry.except))
          problem(`${p}.except`, "an array of CIDR networks", entry.except);
        else
          entry.except.forEach((e, j) => {
            try {
              const x = parseNetwork(e, `${p}.except[${j}]`);
              if (!networkContains(net, x))
                problem(`${p}.except[${j}]`, `a network inside ${net.text}`, e);
              else except.push(x);
            } catch (err) {
              pushError(problems, err);
            }
          });
      }
      out.push({ net, except });
    } catch (err) {
      pushError(problems, err);
    }
  });
  return out;
}

function compileRoute(
  route: unknown,
  at: string,
  problem: (path: string, what: string, value: unknown) => void,
): RouteMatcher {
  const m: RouteMatcher = { label: "" };
  if (!isObject(route)) {
    problem(at, "a route { path | pathPrefix, methods? }", route);
    return m;
  }
  for (const key of Object.keys(route))
    if (key !== "path" && key !== "pathPrefix" && key !== "methods")
      problem(`${at}.${key}`, "no such field (path, pathPrefix, methods)", route[key]);
  if (route.path !== undefined && route.pathPrefix !== undefined)
    problem(at, "only one of path, pathPrefix", route);
  if (route.path !== undefined) {
    if (typeof route.path !== "string" || !route.path.startsWith("/"))
      problem(`${at}.path`, 'a path starting with "/"', route.path);
    else {
      m.exact = route.path;
      m.label = `exact:${route.path}`;
    }
  } else if (route.pathPrefix !== undefined) {
    if (typeof route.pathPrefix !== "string" || !route.pathPrefix.startsWith("/"))
      problem(`${at}.pathPrefix`, 'a path starting with "/"', route.pathPrefix);
    else {
      const prefix = route.pathPrefix.length > 1 ? route.pathPrefix.replace(/\/+$/, "") : "/";
      m.prefix = prefix;
      m.label = `prefix:${prefix}`;
    }
  } else {
    m.prefix = "/";
    m.label = "prefix:/";
  }
  if (route.methods !== undefined) {
    if (!Array.isArray(route.methods) || route.methods.length === 0)
      problem(`${at}.methods`, "a non-empty array of HTTP methods", route.methods);
    else {
      m.methods = new Set();
      route.methods.forEach((x, k) => {
        if (typeof x !== "string" || !METHOD.test(x))
          problem(`${at}.methods[${k}]`, "an HTTP method token", x);
        else m.methods?.add(x.toUpperCase());
      });
    }
  }
  return m;
}
