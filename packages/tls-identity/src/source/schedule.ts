/** Renewal policy knobs (all ms). */
export interface RenewalPolicy {
  /** Fraction of the remaining lifetime after which to renew. Default 0.7. */
  fraction: number;
  /** Lower clamp of the renewal delay. Default 10 s. */
  minDelayMs: number;
  /** Upper clamp of the renewal delay. Default 24 h. */
  maxDelayMs: number;
}

/** The defaults: renew at 70 % of lifetime, clamped to 10 s..24 h. */
export const DEFAULT_RENEWAL: RenewalPolicy = {
  fraction: 0.7,
  minDelayMs: 10_000,
  maxDelayMs: 24 * 60 * 60 * 1000,
};

/**
 * How long to wait before renewing an SVID that expires at `notAfter`, measured from
 * `now` (when it was obtained): `fraction` of the remaining lifetime, clamped to
 * `[minDelayMs, maxDelayMs]`, but never later than 90 % of the remaining lifetime — an
 * SVID shorter than the minimum is still renewed before it expires. (The lifetime is
 * measured from `now`, not from notBefore, because notBefore is backdated for skew.)
 */
export function renewalDelay(
  now: number,
  notAfter: number,
  policy: RenewalPolicy = DEFAULT_RENEWAL,
): number {
  const remaining = notAfter - now;
  if (remaining <= 0) return 0;
  const wanted = Math.min(
    Math.max(remaining * policy.fraction, policy.minDelayMs),
    policy.maxDelayMs,
  );
  return Math.round(Math.min(wanted, remaining * 0.9));
}

/** Retry backoff knobs (all ms). */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** Default retry backoff: 1 s doubling to 30 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000 };

/**
 * Delay before retry number `attempt` (0-based): exponential from `initialMs`, capped at
 * `maxMs`, with ±20 % jitter from `random` so a fleet does not retry in lockstep. When
 * the current SVID still has `remaining` ms left, the retry is pulled in to at most half
 * of it so a few attempts fit before expiry.
 */
export function retryDelay(
  attempt: number,
  policy: BackoffPolicy,
  remaining: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.initialMs * 2 ** Math.min(attempt, 30), policy.maxMs);
  let d = base * (0.8 + 0.4 * random());
  if (remaining > 0) d = Math.min(d, Math.max(remaining / 2, policy.initialMs));
  return Math.max(1, Math.floor(d));
}
