import {
  matchPath,
  parseSpiffeId,
  parseTrustDomain,
  type SpiffeId,
  type SpiffeIdMatcher,
} from "@mesh/tls-identity";

/**
 * A compiled set of identity patterns. `matches` takes the client's verified SPIFFE ID.
 *
 * Pattern forms:
 * - `*`: any authenticated client;
 * - `spiffe://example.org/ns/web/sa/api`: exactly that ID;
 * - `spiffe://example.org/*`: any ID in the trust domain `example.org`;
 * - `spiffe://example.org/ns/prod/*`, `spiffe://example.org/ns/*\/sa/web`: path patterns,
 *   where `*` matches one segment, or as the last segment the rest of the path.
 *
 * @public
 */
export interface IdentityMatcher {
  /** Whether the set admits `id`. */
  matches(id: SpiffeId): boolean;
  /** Whether the set is `*` (any authenticated client). */
  readonly any: boolean;
}

/**
 * Compiles identity patterns; `path` names the list in error messages
 * (`inbound.policy.rules[0].allow.identities[1]: expected ...`).
 *
 * @throws TypeError naming the offending entry.
 * @public
 */
export function compileIdentities(patterns: unknown, path: string): IdentityMatcher {
  if (!Array.isArray(patterns))
    throw new TypeError(
      `${path}: expected an array of SPIFFE IDs or patterns, got ${typeof patterns}`,
    );
  const exact = new Set<string>();
  const domains = new Set<string>();
  const paths: SpiffeIdMatcher[] = [];
  let any = false;
  patterns.forEach((p, i) => {
    const at = `${path}[${i}]`;
    if (typeof p !== "string" || p.length === 0)
      throw new TypeError(
        `${at}: expected a SPIFFE ID, "*" or a spiffe:// pattern, got ${JSON.stringify(p)}`,
      );
    if (p === "*") {
      any = true;
      return;
    }
    if (!p.startsWith("spiffe://"))
      throw new TypeError(
        `${at}: expected a SPIFFE ID, "*" or a spiffe:// pattern (bare paths would match every trust domain), got ${JSON.stringify(p)}`,
      );
    try {
      const slash = p.indexOf("/", 9);
      if (slash !== -1 && p.slice(slash) === "/*") {
        domains.add(parseTrustDomain(p.slice(9, slash)));
      } else if (p.includes("*")) {
        paths.push(matchPath(p));
      } else {
        exact.add(parseSpiffeId(p).toString());
      }
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new TypeError(
        `${at}: expected a SPIFFE ID, "*" or a spiffe:// pattern, got ${JSON.stringify(p)} (${why})`,
      );
    }
  });
  return {
    any,
    matches(id) {
      if (any) return true;
      if (exact.size > 0 && exact.has(id.toString())) return true;
      if (domains.size > 0 && domains.has(id.trustDomain)) return true;
      for (const m of paths) if (m(id)) return true;
      return false;
    },
  };
}
