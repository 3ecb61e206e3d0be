import { parseSpiffeId, parseTrustDomain } from "@mesh/tls-identity";
import type { z } from "zod";
import { describeValue } from "./errors.js";

/** The parts of the parsed config the cross-field security checks read. */
interface SecurityView {
  identity?: { trustDomain: string; id: string } | undefined;
  outbound?:
    | {
        requireIdentity: boolean;
        services: {
          discovery?: DiscoveryView | undefined;
          backends?: { discovery: DiscoveryView }[] | undefined;
          routes?: { backends?: { discovery: DiscoveryView }[] | undefined }[] | undefined;
        }[];
        tcp: { discovery: DiscoveryView }[];
      }
    | undefined;
  inbound?: { policy: unknown } | undefined;
}

interface DiscoveryView {
  static?: (string | { identity?: string | undefined })[] | undefined;
}

/** Adds a problem whose message is already complete (`expected …, got …`). */
function complete(ctx: z.RefinementCtx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: "custom", message, path, params: { complete: true } });
}

/**
 * Cross-field checks of the security settings, run after the field-level schema: SPIFFE IDs
 * and trust domain well-formed, the inbound policy compiles (identity patterns, CIDRs,
 * `cluster-authenticated` needs a trust domain), and mTLS settings have an identity to use.
 */
export function checkSecurity(cfg: SecurityView, ctx: z.RefinementCtx): void {
  // Runs in the same round as the field checks (see `when` in schema.ts), so parts of
  // `cfg` may be invalid: skip whatever already has a problem, and read defensively.
  const reported = (path: readonly PropertyKey[], orAbove = false) =>
    ctx.issues.some((issue) => {
      const at = issue.path ?? [];
      if (at.length < path.length && !orAbove) return false;
      const n = Math.min(at.length, path.length);
      for (let i = 0; i < n; i++) if (at[i] !== path[i]) return false;
      return true;
    });
  const id = cfg.identity;
  let trustDomain: string | undefined;
  if (
    id !== null &&
    typeof id === "object" &&
    typeof id.trustDomain === "string" &&
    typeof id.id === "string" &&
    !reported(["identity", "trustDomain"]) &&
    !reported(["identity", "id"])
  ) {
    try {
      trustDomain = parseTrustDomain(id.trustDomain);
    } catch (err) {
      complete(
        ctx,
        ["identity", "trustDomain"],
        `expected a SPIFFE trust domain, got ${describeValue(id.trustDomain)} (${(err as Error).message})`,
      );
    }
    try {
      const parsed = parseSpiffeId(id.id);
      if (trustDomain !== undefined && parsed.trustDomain !== trustDomain)
        throw new Error(`it is in trust domain ${parsed.trustDomain}`);
    } catch (err) {
      complete(
        ctx,
        ["identity", "id"],
        `expected a SPIFFE ID in ${trustDomain ?? "the trust domain"}, got ${describeValue(id.id)} (${(err as Error).message})`,
      );
    }
  }
  // The policy's own fields are checked by its schema; this is the one rule across sections.
  const policy = cfg.inbound?.policy as { default?: unknown } | undefined;
  if (
    policy?.default === "cluster-authenticated" &&
    typeof id?.trustDomain !== "string" &&
    !reported(["identity"], true)
  )
    complete(
      ctx,
      ["inbound", "policy", "default"],
      "expected identity.trustDomain to be configured for cluster-authenticated, got nothing",
    );
  const out = cfg.outbound;
  if (out === null || typeof out !== "object" || id !== undefined) return;
  if (out.requireIdentity === true)
    complete(
      ctx,
      ["outbound", "requireIdentity"],
      "expected identity to be configured (requireIdentity sends only over mTLS), got true",
    );
  const checkDiscovery = (d: DiscoveryView | undefined, at: (string | number)[]) => {
    if (!Array.isArray(d?.static)) return;
    d.static.forEach((e, i) => {
      if (e !== null && typeof e === "object" && e.identity !== undefined)
        complete(
          ctx,
          [...at, "discovery", "static", i, "identity"],
          `expected the top-level identity section to be configured for mTLS endpoints, got ${describeValue(e.identity)}`,
        );
    });
  };
  if (Array.isArray(out.services))
    out.services.forEach((s, i) => {
      checkDiscovery(s?.discovery, ["outbound", "services", i]);
      if (Array.isArray(s?.backends))
        s.backends.forEach((b, j) => {
          checkDiscovery(b?.discovery, ["outbound", "services", i, "backends", j]);
        });
      if (Array.isArray(s?.routes))
        s.routes.forEach((r, j) => {
          if (Array.isArray(r?.backends))
            r.backends.forEach((b, k) => {
              checkDiscovery(b?.discovery, ["outbound", "services", i, "routes", j, "backends", k]);
            });
        });
    });
  if (Array.isArray(out.tcp))
    out.tcp.forEach((t, i) => {
      checkDiscovery(t?.discovery, ["outbound", "tcp", i]);
    });
}
