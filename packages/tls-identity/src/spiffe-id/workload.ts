import { parseTrustDomain, SpiffeId } from "./spiffe-id.js";

/**
 * Builds the Kubernetes-style workload ID `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`
 * used by Linkerd and Istio.
 *
 * @throws {@link SpiffeIdError} when a part is not a valid trust domain or segment.
 * @public
 */
export function workloadId(
  trustDomain: string,
  namespace: string,
  serviceAccount: string,
): SpiffeId {
  return SpiffeId.fromSegments(
    parseTrustDomain(trustDomain),
    "ns",
    namespace,
    "sa",
    serviceAccount,
  );
}

/**
 * The namespace and service account of a `/ns/<ns>/sa/<sa>` workload ID, or `undefined`
 * when the ID has another shape.
 *
 * @public
 */
export function parseWorkloadId(
  id: SpiffeId,
): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const s = id.segments;
  if (s.length !== 4 || s[0] !== "ns" || s[2] !== "sa") return undefined;
  return { trustDomain: id.trustDomain, namespace: s[1] as string, serviceAccount: s[3] as string };
}
