/**
 * The mesh side of the example, which in production already exists: an identity issuer for
 * the trust domain, and one token per workload it will issue SVIDs to.
 */
import { randomBytes } from "node:crypto";
import {
  createIssuer,
  createTrustAnchor,
  staticTokenAuthenticator,
  workloadId,
} from "@mesh/tls-identity";

/** The example's trust domain. */
export const TRUST_DOMAIN = "demo.mesh";

/** `spiffe://demo.mesh/ns/demo/sa/<name>` */
export function idOf(name: string): string {
  return workloadId(TRUST_DOMAIN, "demo", name).toString();
}

/** A running issuer and the bearer token of each workload it knows. */
export interface MeshIssuer {
  readonly url: string;
  /** Workload name → its bearer token. */
  readonly tokens: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

/**
 * Creates a root and an intermediate CA for {@link TRUST_DOMAIN}, a random token for each
 * workload, and starts the issuer on 127.0.0.1 (a port the OS picks).
 */
export async function startIssuer(workloads: readonly string[]): Promise<MeshIssuer> {
  const ca = createTrustAnchor({ trustDomain: TRUST_DOMAIN }).createAuthority();
  const tokens = new Map(workloads.map((w) => [w, randomBytes(24).toString("base64url")]));
  const issuer = createIssuer({
    ca,
    authenticator: staticTokenAuthenticator(
      Object.fromEntries([...tokens].map(([w, token]) => [token, idOf(w)])),
    ),
  });
  const url = await issuer.listen(0, "127.0.0.1");
  return { url, tokens, close: () => issuer.close() };
}
