import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  createIssuer,
  createTrustAnchor,
  type Issuer,
  staticTokenAuthenticator,
  workloadId,
} from "@mesh/tls-identity";

/** The demo's trust domain. */
export const TRUST_DOMAIN = "demo.mesh";

/** What a sidecar needs to get its SVID from the demo issuer. */
export interface WorkloadIdentity {
  /** `spiffe://demo.mesh/ns/demo/sa/<name>` */
  readonly id: string;
  /** File holding the workload's bearer token (mode 0600). */
  readonly tokenFile: string;
}

/** A running identity issuer for the demo mesh. */
export interface DemoIssuer {
  readonly url: string;
  /** The trust bundle (root certificates) as a PEM file. */
  readonly bundleFile: string;
  readonly identities: ReadonlyMap<string, WorkloadIdentity>;
  close(): Promise<void>;
}

/**
 * Creates a root and an intermediate CA for `demo.mesh`, writes the trust bundle and one
 * random token per workload into `dir`, and starts the issuer service on 127.0.0.1 (port 0).
 */
export async function startIssuer(dir: string, workloads: readonly string[]): Promise<DemoIssuer> {
  const ca = createTrustAnchor({ trustDomain: TRUST_DOMAIN }).createAuthority();
  const bundleFile = join(dir, "bundle.pem");
  writeFileSync(bundleFile, ca.bundle.pem);
  const tokens: Record<string, string> = {};
  const identities = new Map<string, WorkloadIdentity>();
  for (const name of workloads) {
    const id = workloadId(TRUST_DOMAIN, "demo", name).toString();
    const token = randomBytes(24).toString("base64url");
    const tokenFile = join(dir, `${name}.token`);
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    tokens[token] = id;
    identities.set(name, { id, tokenFile });
  }
  const issuer: Issuer = createIssuer({ ca, authenticator: staticTokenAuthenticator(tokens) });
  const url = await issuer.listen(0, "127.0.0.1");
  return { url, bundleFile, identities, close: () => issuer.close() };
}
