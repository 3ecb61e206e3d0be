import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { type Clock, duration, typeError } from "@mesh/core";
import { systemClock } from "../clock.js";
import { parseSpiffeId, type SpiffeId } from "../spiffe-id/spiffe-id.js";

/**
 * Decides who a workload is from its bearer token. Return the SPIFFE ID the token
 * proves, or `undefined` when the token is not valid (the issuer answers 401).
 * Implement it to plug in Kubernetes TokenReview, OIDC, etc.
 *
 * @public
 */
export interface Authenticator {
  authenticate(
    token: string,
    request: IncomingMessage,
  ): SpiffeId | undefined | Promise<SpiffeId | undefined>;
}

function digest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * An authenticator from a static map of token → SPIFFE ID. Tokens are kept only as
 * SHA-256 digests and looked up by digest, so lookups do not leak token prefixes through
 * timing.
 *
 * @throws TypeError / SpiffeIdError when an entry is invalid.
 * @public
 */
export function staticTokenAuthenticator(
  tokens: Record<string, string> | Map<string, string>,
): Authenticator & { size: number } {
  const entries = tokens instanceof Map ? [...tokens] : Object.entries(tokens ?? {});
  if (tokens === null || typeof tokens !== "object")
    throw typeError("tokens", "an object of token → SPIFFE ID", tokens);
  const byDigest = new Map<string, SpiffeId>();
  for (const [token, id] of entries) {
    if (typeof token !== "string" || token.length < 8)
      throw typeError("tokens key", "a token of at least 8 characters", token);
    if (typeof id !== "string")
      throw typeError(`tokens[…${token.slice(-4)}]`, "a SPIFFE ID string", id);
    byDigest.set(digest(token), parseSpiffeId(id));
  }
  return {
    size: byDigest.size,
    authenticate: (token) => byDigest.get(digest(token)),
  };
}

/**
 * An authenticator reading a JSON token file `{ "<token>": "spiffe://td/ns/x/sa/y", ... }`.
 * The file is re-read when its contents change (checked at most once per
 * `recheckIntervalMs`, default 1 s), so tokens can be added or revoked without restarting
 * the issuer; a missing or half-written file keeps the last good token set.
 *
 * @public
 */
export function tokenFileAuthenticator(
  path: string,
  options: { recheckIntervalMs?: number; clock?: Clock } = {},
): Authenticator {
  const interval = duration(
    "options.recheckIntervalMs",
    options.recheckIntervalMs,
    1000,
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const clock = options.clock ?? systemClock;
  const load = () => {
    const text = readFileSync(path, "utf8");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new TypeError(
        `${path}: expected a JSON object of token → SPIFFE ID, got invalid JSON (${(cause as Error).message})`,
      );
    }
    if (json === null || typeof json !== "object" || Array.isArray(json))
      throw typeError(path, "a JSON object of token → SPIFFE ID", json);
    return { text, auth: staticTokenAuthenticator(json as Record<string, string>) };
  };
  let current = load();
  let checkedAt = clock.now();
  return {
    authenticate(token, request) {
      const now = clock.now();
      if (now - checkedAt >= interval) {
        checkedAt = now;
        try {
          const text = readFileSync(path, "utf8");
          if (text !== current.text) current = load();
        } catch {
          // Keep the last good token set when the file is missing or mid-write.
        }
      }
      return current.auth.authenticate(token, request);
    },
  };
}
