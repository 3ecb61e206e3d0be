/**
 * The annotations `inject` and the injector read (on a pod or pod template; `mesh.dev/inject`
 * also on a namespace) and the ones they write. Named after Linkerd's (`linkerd.io/inject`,
 * `config.linkerd.io/opaque-ports`) with this mesh's domain.
 */
export const ANNOTATIONS = {
  /** `enabled` or `disabled`. */
  inject: "mesh.dev/inject",
  /** Target ports proxied as opaque TCP: `5432,6379` or ranges `4000-4010`. */
  opaquePorts: "config.mesh.dev/opaque-ports",
  /** Container ports the inbound proxy does not serve (e.g. a metrics port scraped directly). */
  skipInboundPorts: "config.mesh.dev/skip-inbound-ports",
  /** Hosts the app reaches directly, appended to `NO_PROXY`: `db.internal,.example.com`. */
  skipOutboundHosts: "config.mesh.dev/skip-outbound-hosts",
  /** Services the app calls through the proxy: `authors, reviews.shop:grpc` (name[.ns][:port]). */
  outboundServices: "config.mesh.dev/outbound-services",
  proxyCpuRequest: "config.mesh.dev/proxy-cpu-request",
  proxyCpuLimit: "config.mesh.dev/proxy-cpu-limit",
  proxyMemoryRequest: "config.mesh.dev/proxy-memory-request",
  proxyMemoryLimit: "config.mesh.dev/proxy-memory-limit",
  proxyLogLevel: "config.mesh.dev/proxy-log-level",
  proxyImage: "config.mesh.dev/proxy-image",
  /** YAML or JSON merged over the generated proxy config (validated like a config file). */
  proxyConfigOverrides: "config.mesh.dev/proxy-config-overrides",
  /** Written: the generated proxy config (projected into the sidecar as a file). */
  proxyConfig: "mesh.dev/proxy-config",
  /** Written: the PEM that verifies the identity issuer (projected as a file). */
  identityCa: "mesh.dev/identity-ca",
  /** Written: what was injected (version, env names added per container), for `--uninject`. */
  status: "mesh.dev/proxy-status",
} as const;

/** Annotations the user sets; anything else under `config.mesh.dev/` is an error (a typo). */
export const USER_ANNOTATIONS = new Set<string>([
  ANNOTATIONS.inject,
  ANNOTATIONS.opaquePorts,
  ANNOTATIONS.skipInboundPorts,
  ANNOTATIONS.skipOutboundHosts,
  ANNOTATIONS.outboundServices,
  ANNOTATIONS.proxyCpuRequest,
  ANNOTATIONS.proxyCpuLimit,
  ANNOTATIONS.proxyMemoryRequest,
  ANNOTATIONS.proxyMemoryLimit,
  ANNOTATIONS.proxyLogLevel,
  ANNOTATIONS.proxyImage,
  ANNOTATIONS.proxyConfigOverrides,
]);

/** An annotation whose value cannot be used; the message names it, the object and the value. */
export class AnnotationError extends Error {
  override readonly name = "AnnotationError";
  constructor(
    readonly annotation: string,
    readonly object: string,
    message: string,
  ) {
    super(`${object}: annotation ${annotation}: ${message}`);
  }
}

/** Parses `80,443,8000-8010` into sorted unique ports. */
export function parsePorts(value: string): number[] | string {
  const out = new Set<number>();
  for (const raw of value.split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return `expected ports or ranges such as 5432,4000-4010, got ${JSON.stringify(value)}`;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65_535 || hi < lo)
      return `expected ports in 1..65535 (ranges low-high), got ${JSON.stringify(part)}`;
    if (hi - lo > 10_000) return `expected a range of at most 10000 ports, got ${part}`;
    for (let p = lo; p <= hi; p++) out.add(p);
  }
  return [...out].sort((a, b) => a - b);
}

/** A Kubernetes resource quantity (`50m`, `1`, `64Mi`, `1G`, `1e3`). */
export const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/;
