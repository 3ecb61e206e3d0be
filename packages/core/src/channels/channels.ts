/**
 * The `node:diagnostics_channel` names of the mesh, `mesh:<package>:<event>`: the one place
 * they are spelled. Publishers and `@mesh/metrics` both take them from here; ARCHITECTURE.md
 * lists each payload.
 */
export const meshChannels = {
  retry: {
    attempt: "mesh:retry:attempt",
    retry: "mesh:retry:retry",
    budgetExhausted: "mesh:retry:budget-exhausted",
    limitExceeded: "mesh:retry:limit-exceeded",
    timeout: "mesh:retry:timeout",
    breaker: "mesh:retry:breaker",
    breakerRejected: "mesh:retry:breaker-rejected",
    hedge: "mesh:retry:hedge",
    hedgeWon: "mesh:retry:hedge-won",
  },
  balancer: {
    endpoint: "mesh:balancer:endpoint",
    failFast: "mesh:balancer:fail-fast",
    zone: "mesh:balancer:zone",
  },
  identity: {
    svid: "mesh:identity:svid",
    refreshFailed: "mesh:identity:refresh-failed",
    issued: "mesh:identity:issued",
  },
  limit: {
    rateLimited: "mesh:limit:rate-limited",
    queued: "mesh:limit:queued",
    concurrencyRejected: "mesh:limit:concurrency-rejected",
    concurrencyLimit: "mesh:limit:concurrency-limit",
  },
  authz: {
    decision: "mesh:authz:decision",
  },
  proxy: {
    request: "mesh:proxy:request",
  },
} as const;

type Values<T> = T[keyof T];

/** Any mesh channel name. */
export type MeshChannelName = Values<{
  [P in keyof typeof meshChannels]: Values<(typeof meshChannels)[P]>;
}>;

/** Every mesh channel name, in declaration order. */
export const allMeshChannels: readonly MeshChannelName[] = Object.freeze(
  Object.values(meshChannels).flatMap((group) => Object.values(group) as MeshChannelName[]),
);
