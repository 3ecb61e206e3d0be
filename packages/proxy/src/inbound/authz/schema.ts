import { z } from "zod";
import { networkContains, parseNetwork } from "./cidr.js";
import { compileIdentities } from "./identity-match.js";

/**
 * The one validator of an inbound authorization policy: the proxy config embeds this schema
 * (`inbound.policy`) and {@link compileAuthzPolicy} parses with it, so a policy is checked
 * the same way whether it comes from a file or from code. Semantic checks (identity
 * patterns, CIDRs, `except` inside its network) run the same parsers the compiler uses; their
 * messages are complete (`expected …, got …`), hence `params.complete`.
 */

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
export type DefaultPolicy = (typeof DEFAULT_POLICIES)[number];

/** The default policies, in documentation order. @public */
export const DEFAULT_POLICIES = [
  "all-unauthenticated",
  "all-authenticated",
  "cluster-authenticated",
  "deny",
  "audit",
] as const;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Runs `parse`; a `TypeError("<path>: <message>")` it throws becomes this value's problem. */
function parsedWith(parse: (value: string) => unknown) {
  return (value: string, ctx: z.RefinementCtx) => {
    try {
      parse(value);
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      const colon = text.indexOf(": ");
      ctx.addIssue({
        code: "custom",
        message: colon === -1 ? text : text.slice(colon + 2),
        params: { complete: true },
        input: value,
      });
    }
  };
}

const cidr = z
  .string({ error: 'expected a CIDR string such as "10.0.0.0/8"' })
  .superRefine(parsedWith((v) => parseNetwork(v)));

const network = z.union(
  [
    cidr,
    z
      .strictObject({
        cidr,
        except: z
          .array(cidr, { error: "expected a list of CIDR networks" })
          .optional()
          .describe("sub-networks excluded (each inside cidr)"),
      })
      .superRefine((n, ctx) => {
        let outer: ReturnType<typeof parseNetwork>;
        try {
          outer = parseNetwork(n.cidr);
        } catch {
          return; // reported by `cidr`
        }
        n.except?.forEach((e, j) => {
          try {
            if (!networkContains(outer, parseNetwork(e)))
              ctx.addIssue({
                code: "custom",
                message: `expected a network inside ${outer.text}`,
                path: ["except", j],
                input: e,
              });
          } catch {
            // reported by `cidr`
          }
        });
      }),
  ],
  { error: "expected a CIDR string or { cidr, except }" },
);

const identity = z
  .string({ error: 'expected a SPIFFE ID, "*" or a spiffe:// pattern' })
  .superRefine(parsedWith((v) => compileIdentities([v], "id")));

const routePath = z
  .string({ error: 'expected a path starting with "/"' })
  .startsWith("/", { error: 'expected a path starting with "/"' });

const route = z
  .strictObject(
    {
      path: routePath.optional().describe("exact path (the query is ignored)"),
      pathPrefix: routePath
        .optional()
        .describe("path prefix, whole segments: /api matches /api and /api/x, not /apix"),
      methods: z
        .array(z.string().regex(METHOD, { error: "expected an HTTP method token" }), {
          error: "expected a list of HTTP methods",
        })
        .min(1, { error: "expected at least one method" })
        .optional(),
    },
    { error: "expected a route { path | pathPrefix, methods? }" },
  )
  .refine((r) => r.path === undefined || r.pathPrefix === undefined, {
    error: "expected only one of path, pathPrefix",
  });

const rule = z.strictObject(
  {
    allow: z
      .strictObject(
        {
          identities: z
            .array(identity, { error: "expected a list of SPIFFE IDs or patterns" })
            .min(1, { error: "expected at least one identity" })
            .optional()
            .describe("SPIFFE IDs or patterns: exact, *, spiffe://td/*, spiffe://td/ns/prod/*"),
          networks: z
            .array(network, { error: "expected a list of CIDR networks" })
            .min(1, { error: "expected at least one network" })
            .optional()
            .describe("client networks (CIDR, with except)"),
        },
        { error: "expected an object with identities and/or networks" },
      )
      .refine((a) => a.identities !== undefined || a.networks !== undefined, {
        error: "expected at least one of identities, networks",
      }),
    routes: z
      .array(route, { error: "expected a list of routes" })
      .min(1, { error: "expected at least one route" })
      .optional()
      .describe("the rule applies only to these HTTP routes"),
  },
  { error: "expected a rule { allow, routes? }" },
);

/** The inbound authorization policy, as written in config (`inbound.policy`). @public */
export const authzPolicySchema = z
  .strictObject(
    {
      default: z
        .enum(DEFAULT_POLICIES, {
          error:
            "expected all-unauthenticated, all-authenticated, cluster-authenticated, deny or audit",
        })
        .default("all-unauthenticated")
        .describe("what happens when no rule allows a client"),
      rules: z
        .array(rule, { error: "expected a list of rules" })
        .default([])
        .describe("allow rules, checked in order; the first that admits the client wins"),
    },
    { error: "expected a policy object { default, rules }" },
  )
  .describe("inbound authorization policy");

/**
 * An inbound authorization policy as written in the proxy config. With both `identities`
 * and `networks`, a rule needs both to match; with `routes`, it applies only to HTTP/gRPC
 * requests on one of those routes (never to opaque TCP).
 *
 * @public
 */
export type AuthzPolicyConfig = z.input<typeof authzPolicySchema>;
/** One allow rule of an {@link AuthzPolicyConfig}. @public */
export type AuthzRuleConfig = NonNullable<AuthzPolicyConfig["rules"]>[number];
/** A route an allow rule is limited to: exact `path` or `pathPrefix`, optional methods. @public */
export type AuthzRouteConfig = NonNullable<AuthzRuleConfig["routes"]>[number];
/** A network entry: a CIDR string, or a CIDR with excluded sub-networks. @public */
export type NetworkConfig = NonNullable<AuthzRuleConfig["allow"]["networks"]>[number];
/** A validated policy, as {@link compileAuthzPolicy} compiles it. @public */
export type ValidAuthzPolicy = z.output<typeof authzPolicySchema>;
