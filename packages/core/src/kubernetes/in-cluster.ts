/*
 * Kubernetes' in-cluster convention (what client-go's `rest.InClusterConfig` reads), needed by
 * @mesh/balancer (EndpointSlice watches) and @mesh/tls-identity (TokenReview): where a pod
 * finds its API server and its service account's credentials. Names and paths only: the
 * packages read the files themselves, each with its own errors, and keep their own HTTP
 * clients (see the README).
 */

/** Where Kubernetes mounts a pod's service-account credentials (`token`, `ca.crt`, `namespace`). */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The files of a service-account directory. */
export interface ServiceAccountFiles {
  /** The CA bundle that verifies the API server. */
  caFile: string;
  /**
   * The bearer token. Read it again before every request: kubelet rotates a projected token
   * in place (about hourly).
   */
  tokenFile: string;
  /** The pod's namespace. */
  namespaceFile: string;
}

/** The files in `dir` (default {@link SERVICE_ACCOUNT_DIR}). */
export function serviceAccountFiles(dir: string = SERVICE_ACCOUNT_DIR): ServiceAccountFiles {
  const d = dir.endsWith("/") && dir.length > 1 ? dir.slice(0, -1) : dir;
  return { caFile: `${d}/ca.crt`, tokenFile: `${d}/token`, namespaceFile: `${d}/namespace` };
}

/**
 * The API server URL of the pod this runs in: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
 * (an IPv6 host in brackets, port 443 when unset); `undefined` outside a pod (no
 * `KUBERNETES_SERVICE_HOST`).
 */
export function inClusterServer(
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT || "443";
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}
