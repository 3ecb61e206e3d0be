import { IdentityError } from "../errors.js";

/** Default leaf lifetime: 24 hours. */
export const DEFAULT_SVID_TTL_MS = 24 * 60 * 60 * 1000;
/** Default clock-skew allowance: notBefore is backdated by 20 seconds. */
export const DEFAULT_CLOCK_SKEW_MS = 20_000;

/**
 * The validity window of a new certificate: `notBefore = now - skew`,
 * `notAfter = min(now + ttl, issuerNotAfter)`, both truncated to whole seconds because
 * X.509 times have second precision.
 *
 * @throws IdentityError `MESH_IDENTITY_CA_EXPIRED` when the issuer chain has already
 * expired (nothing valid could be issued).
 */
export function computeValidity(opts: {
  now: number;
  ttlMs: number;
  skewMs: number;
  issuerNotAfter?: number;
}): { notBefore: Date; notAfter: Date } {
  const notBefore = Math.floor((opts.now - opts.skewMs) / 1000) * 1000;
  let notAfter = Math.floor((opts.now + opts.ttlMs) / 1000) * 1000;
  if (opts.issuerNotAfter !== undefined && notAfter > opts.issuerNotAfter)
    notAfter = opts.issuerNotAfter;
  if (notAfter <= opts.now)
    throw new IdentityError(
      "MESH_IDENTITY_CA_EXPIRED",
      `the issuing chain expires at ${new Date(notAfter).toISOString()}; nothing valid can be issued`,
    );
  return { notBefore: new Date(notBefore), notAfter: new Date(notAfter) };
}
