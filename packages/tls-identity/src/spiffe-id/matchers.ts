import { typeError } from "@mesh/core";
import { parseSpiffeId, parseTrustDomain, type SpiffeId, toSpiffeId } from "./spiffe-id.js";

/**
 * Decides whether a peer's SPIFFE ID is acceptable. Used as the server-side authorizer and
 * the client-side expectation.
 *
 * @public
 */
export type SpiffeIdMatcher = (id: SpiffeId) => boolean;

/** Accepts exactly `id`. @public */
export function matchExact(id: SpiffeId | string): SpiffeIdMatcher {
  const text = toSpiffeId(id).toString();
  return (peer) => peer.toString() === text;
}

/** Accepts any of the given IDs. @public */
export function matchOneOf(ids: Iterable<SpiffeId | string>): SpiffeIdMatcher {
  const set = new Set<string>();
  for (const id of ids) set.add(toSpiffeId(id).toString());
  return (peer) => set.has(peer.toString());
}

/** Accepts any ID in `trustDomain` (given bare or as `spiffe://td`). @public */
export function matchTrustDomain(trustDomain: string): SpiffeIdMatcher {
  const td = parseTrustDomain(trustDomain);
  return (peer) => peer.trustDomain === td;
}

/**
 * Accepts IDs whose path matches `pattern`, a path whose segments are literal or `*`.
 * A `*` segment matches exactly one segment, except as the last segment, where it
 * matches one or more (the rest of the path): `/ns/prod/*` accepts
 * `/ns/prod/sa/web`, and a `*` in the middle accepts any one namespace, service
 * account or other segment.
 * The pattern may be a full ID (`spiffe://example.org/ns/prod/*`) to also pin the trust
 * domain; a bare path matches in any trust domain.
 *
 * @throws TypeError when the pattern is not a valid ID/path once `*` is substituted.
 * @public
 */
export function matchPath(pattern: string): SpiffeIdMatcher {
  if (typeof pattern !== "string") throw typeError("pattern", "a string", pattern);
  let td: string | undefined;
  let path = pattern;
  if (pattern.startsWith("spiffe://")) {
    const slash = pattern.indexOf("/", 9);
    td = parseTrustDomain(slash === -1 ? pattern.slice(9) : pattern.slice(9, slash));
    path = slash === -1 ? "" : pattern.slice(slash);
  }
  if (path !== "" && !path.startsWith("/"))
    throw typeError("pattern", 'a path starting with "/" or a spiffe:// ID', pattern);
  // Validate the pattern by substituting a literal for each wildcard.
  parseSpiffeId(`spiffe://x${path.replaceAll("*", "x")}`);
  const parts = path === "" ? [] : path.slice(1).split("/");
  for (const p of parts)
    if (p.includes("*") && p !== "*")
      throw typeError("pattern", "segments that are literal or exactly *", pattern);
  const trailing = parts.length > 0 && parts[parts.length - 1] === "*";
  return (peer) => {
    if (td !== undefined && peer.trustDomain !== td) return false;
    const segs = peer.segments;
    if (trailing ? segs.length < parts.length : segs.length !== parts.length) return false;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (p !== "*" && p !== segs[i]) return false;
    }
    return true;
  };
}

/** Accepts an ID when any matcher accepts it. @public */
export function matchAny(...matchers: SpiffeIdMatcher[]): SpiffeIdMatcher {
  return (peer) => matchers.some((m) => m(peer));
}
