import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { formatProblem } from "../../config/errors.js";
import { validateConfig } from "../../config/load.js";
import { DEFAULT_OPAQUE_PORTS } from "../../config/schema.js";
import {
  ANNOTATIONS,
  AnnotationError,
  parsePorts,
  QUANTITY,
  USER_ANNOTATIONS,
} from "./annotations.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON
export type KubeJson = Record<string, any>;

/** The parts of a pod (or pod template) that injection reads and writes. */
export interface PodTemplate {
  metadata?: KubeJson;
  spec: KubeJson;
}

/** Cluster-wide settings of injection: `mesh-proxy install` writes them for the injector. */
export interface InjectSettings {
  /** The proxy image. */
  image: string;
  /** The mesh's trust domain (SPIFFE IDs `spiffe://<td>/ns/<ns>/sa/<sa>`). */
  trustDomain: string;
  /** The cluster's DNS domain, for authorities `svc.ns.svc.<domain>`. Default `cluster.local`. */
  clusterDomain: string;
  /**
   * Where proxies get their certificates: the issuer's URL, the PEM that verifies it, the
   * audience of the ServiceAccount token they prove themselves with. Without it the injected
   * proxies speak plaintext between pods.
   */
  identity?: { issuerUrl: string; ca: string; audience: string } | undefined;
}

/** The name of the injected sidecar (and of the volumes it owns, with suffixes). */
export const PROXY_CONTAINER = "mesh-proxy";
const CONFIG_VOLUME = "mesh-proxy";
const API_VOLUME = "mesh-kube-api-access";
/** Where the sidecar finds its config, the issuer's CA and its identity token. */
export const MESH_DIR = "/var/run/mesh";
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
export const PROXY_PORTS = { outbound: 4140, inbound: 4143, admin: 4191 } as const;
const OUTBOUND_URL = `http://127.0.0.1:${PROXY_PORTS.outbound}`;
const PROXY_UID = 65532;

interface Status {
  version: 1;
  /** Env variable names added to each app container, removed again by `--uninject`. */
  env: Record<string, string[]>;
}

/** Whether the pod already has the sidecar. */
export function isInjected(pod: PodTemplate): boolean {
  return (
    (pod.spec.initContainers ?? []).some((c: KubeJson) => c?.name === PROXY_CONTAINER) ||
    (pod.spec.containers ?? []).some((c: KubeJson) => c?.name === PROXY_CONTAINER)
  );
}

/** A copy of the pod without anything injection added (the user's own annotations stay). */
export function uninjectPod(pod: PodTemplate): PodTemplate {
  const out = structuredClone(pod);
  const annotations: KubeJson = out.metadata?.annotations ?? {};
  let status: Status = { version: 1, env: {} };
  try {
    const s = JSON.parse(annotations[ANNOTATIONS.status] ?? "null");
    if (s && typeof s === "object" && s.env && typeof s.env === "object") status = s;
  } catch {
    // A hand-edited status: the sidecar and volumes still go; env stays as the user has it.
  }
  for (const key of [ANNOTATIONS.status, ANNOTATIONS.proxyConfig, ANNOTATIONS.identityCa])
    delete annotations[key];
  if (out.metadata?.annotations && Object.keys(annotations).length === 0)
    delete out.metadata.annotations;
  if (out.metadata && Object.keys(out.metadata).length === 0) delete out.metadata;
  const s = out.spec;
  const drop = (list: KubeJson[] | undefined, names: string[]) =>
    list?.filter((x) => !names.includes(x?.name));
  if (s.initContainers) {
    s.initContainers = drop(s.initContainers, [PROXY_CONTAINER]);
    if (s.initContainers.length === 0) delete s.initContainers;
  }
  s.containers = drop(s.containers, [PROXY_CONTAINER]);
  if (s.volumes) {
    s.volumes = drop(s.volumes, [CONFIG_VOLUME, API_VOLUME]);
    if (s.volumes.length === 0) delete s.volumes;
  }
  for (const c of s.containers ?? []) {
    const added = status.env[c.name] ?? [];
    if (added.length === 0 || !Array.isArray(c.env)) continue;
    c.env = c.env.filter((e: KubeJson) => !added.includes(e?.name));
    if (c.env.length === 0) delete c.env;
  }
  return out;
}

interface Ctx {
  /** `Deployment/books` (for errors). */
  object: string;
  namespace: string;
  settings: InjectSettings;
}

/**
 * The pod with the @mesh proxy added as a native sidecar, with its generated config,
 * identity token, API access, probes, resources and security settings, and the app's
 * containers pointed at the outbound proxy (`HTTP_PROXY`). Pure: the same input gives the
 * same output, and injecting an injected pod gives the same pod (it is uninjected first).
 *
 * @throws AnnotationError naming the annotation and the object when one is invalid.
 */
export function injectPod(pod: PodTemplate, ctx: Ctx): PodTemplate {
  const out = uninjectPod(pod);
  const annotations: Record<string, string> = out.metadata?.annotations ?? {};
  const read = readAnnotations(annotations, ctx);
  const spec = out.spec;
  const containers: KubeJson[] = spec.containers ?? [];

  const config = proxyConfig(spec, containers, read, ctx);
  const status: Status = { version: 1, env: {} };
  const noProxy = ["localhost", "127.0.0.1", "::1", ...read.skipOutboundHosts].join(",");
  for (const c of containers) {
    const env: KubeJson[] = Array.isArray(c.env) ? c.env : [];
    const added: string[] = [];
    for (const [name, value] of [
      ["HTTP_PROXY", OUTBOUND_URL],
      ["http_proxy", OUTBOUND_URL],
      ["NO_PROXY", noProxy],
      ["no_proxy", noProxy],
    ] as const) {
      // The user's own setting wins (an app that already dials the sidecar, or opts out).
      if (env.some((e) => e?.name === name)) continue;
      env.push({ name, value });
      added.push(name);
    }
    if (added.length > 0) {
      c.env = env;
      status.env[c.name] = added;
    }
  }

  const newAnnotations: Record<string, string> = {
    ...annotations,
    [ANNOTATIONS.proxyConfig]: stringifyYaml(config, { lineWidth: 0 }),
    ...(ctx.settings.identity ? { [ANNOTATIONS.identityCa]: ctx.settings.identity.ca } : {}),
    [ANNOTATIONS.status]: JSON.stringify(status),
  };
  out.metadata = { ...(out.metadata ?? {}), annotations: newAnnotations };
  spec.initContainers = [sidecar(read), ...(spec.initContainers ?? [])];
  spec.volumes = [...(spec.volumes ?? []), ...volumes(ctx)];
  return out;
}

const SUFFIX: Record<string, number> = {
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The number a (QUANTITY-valid) Kubernetes quantity stands for. */
function quantityValue(q: string): number {
  const m = /^[+]?([\d.]+)([a-zA-Z]*|[eE][+-]?\d+)$/.exec(q);
  if (!m) return Number.NaN;
  const unit = m[2] as string;
  if (/^[eE]/.test(unit)) return Number(`${m[1]}${unit}`);
  return Number(m[1]) * (unit === "" ? 1 : (SUFFIX[unit] ?? Number.NaN));
}

interface Read {
  opaquePorts: number[];
  skipInboundPorts: number[];
  skipOutboundHosts: string[];
  outbound: { service: string; namespace: string; port: string | number }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  logLevel: string;
  image: string;
  overrides: KubeJson | undefined;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function readAnnotations(a: Record<string, string>, ctx: Ctx): Read {
  const fail = (name: string, message: string): never => {
    throw new AnnotationError(name, ctx.object, message);
  };
  for (const [k, v] of Object.entries(a)) {
    if ((k.startsWith("config.mesh.dev/") || k === ANNOTATIONS.inject) && !USER_ANNOTATIONS.has(k))
      fail(k, `unknown annotation (known: ${[...USER_ANNOTATIONS].join(", ")})`);
    if (typeof v !== "string") fail(k, `expected a string value, got ${JSON.stringify(v)}`);
  }
  const inject = a[ANNOTATIONS.inject];
  if (inject !== undefined && inject !== "enabled" && inject !== "disabled")
    fail(ANNOTATIONS.inject, `expected enabled or disabled, got ${JSON.stringify(inject)}`);
  const ports = (name: string, fallback: number[]) => {
    const v = a[name];
    if (v === undefined) return fallback;
    const p = parsePorts(v);
    return typeof p === "string" ? fail(name, p) : p;
  };
  const outbound = (a[ANNOTATIONS.outboundServices] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const m = /^([^.:]+)(?:\.([^.:]+))?(?::([^:]+))?$/.exec(s);
      const [service, namespace = ctx.namespace, port = "http"] = m ? m.slice(1) : [];
      if (!m || !DNS_LABEL.test(service as string) || !DNS_LABEL.test(namespace as string))
        fail(
          ANNOTATIONS.outboundServices,
          `expected service[.namespace][:port] entries separated by commas, got ${JSON.stringify(s)}`,
        );
      const n = Number(port);
      const portValue = /^\d+$/.test(port as string) ? n : (port as string);
      if (typeof portValue === "number" ? n < 1 || n > 65_535 : !DNS_LABEL.test(portValue))
        fail(
          ANNOTATIONS.outboundServices,
          `expected a port name or number in ${JSON.stringify(s)}`,
        );
      return { service: service as string, namespace: namespace as string, port: portValue };
    });
  const quantity = (name: string, fallback?: string) => {
    const v = a[name] ?? fallback;
    if (v !== undefined && !QUANTITY.test(v))
      fail(
        name,
        `expected a Kubernetes quantity such as 100m, 64Mi or 1Gi, got ${JSON.stringify(v)}`,
      );
    return v;
  };
  const requests: Record<string, string> = {
    cpu: quantity(ANNOTATIONS.proxyCpuRequest, "50m") as string,
    memory: quantity(ANNOTATIONS.proxyMemoryRequest, "64Mi") as string,
  };
  // No CPU limit unless asked: CFS throttling turns into tail latency on every request.
  const limits: Record<string, string> = {
    memory: quantity(ANNOTATIONS.proxyMemoryLimit, "256Mi") as string,
  };
  const cpuLimit = quantity(ANNOTATIONS.proxyCpuLimit);
  if (cpuLimit !== undefined) limits.cpu = cpuLimit;
  // The API server refuses a request above its limit; say so here, naming the annotation.
  for (const [resource, limitName] of [
    ["memory", ANNOTATIONS.proxyMemoryLimit],
    ["cpu", ANNOTATIONS.proxyCpuLimit],
  ] as const) {
    const req = requests[resource] as string;
    const lim = limits[resource];
    if (lim !== undefined && quantityValue(req) > quantityValue(lim))
      fail(
        limitName,
        `expected at least the ${resource} request (${req}), got ${JSON.stringify(lim)}`,
      );
  }
  const logLevel = a[ANNOTATIONS.proxyLogLevel] ?? "info";
  if (!LOG_LEVELS.includes(logLevel))
    fail(
      ANNOTATIONS.proxyLogLevel,
      `expected ${LOG_LEVELS.join(", ")}; got ${JSON.stringify(logLevel)}`,
    );
  const image = a[ANNOTATIONS.proxyImage] ?? ctx.settings.image;
  if (!/^[^\s]+$/.test(image))
    fail(ANNOTATIONS.proxyImage, `expected an image reference, got ${JSON.stringify(image)}`);
  let overrides: KubeJson | undefined;
  const text = a[ANNOTATIONS.proxyConfigOverrides];
  if (text !== undefined) {
    try {
      overrides = parseYaml(text) as KubeJson;
    } catch (err) {
      fail(
        ANNOTATIONS.proxyConfigOverrides,
        `expected YAML or JSON: ${(err as Error).message.split("\n")[0]}`,
      );
    }
    if (overrides === null || typeof overrides !== "object" || Array.isArray(overrides))
      fail(ANNOTATIONS.proxyConfigOverrides, "expected a mapping of proxy config fields");
  }
  return {
    opaquePorts: ports(ANNOTATIONS.opaquePorts, DEFAULT_OPAQUE_PORTS),
    skipInboundPorts: ports(ANNOTATIONS.skipInboundPorts, []),
    skipOutboundHosts: (a[ANNOTATIONS.skipOutboundHosts] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    outbound,
    resources: { requests, limits },
    logLevel,
    image,
    overrides,
  };
}

/** Deep merge for config overrides: maps merge, anything else (lists too) replaces. */
function merge(base: KubeJson, over: KubeJson): KubeJson {
  const out: KubeJson = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v &&
      typeof v === "object" &&
      !Array.isArray(v) &&
      b &&
      typeof b === "object" &&
      !Array.isArray(b)
        ? merge(b, v)
        : v;
  }
  return out;
}

function proxyConfig(spec: KubeJson, containers: KubeJson[], read: Read, ctx: Ctx): KubeJson {
  const { namespace, settings } = ctx;
  const domain = settings.clusterDomain;
  const appPorts: number[] = [];
  for (const c of containers)
    for (const p of c.ports ?? [])
      if ((p.protocol ?? "TCP") === "TCP" && Number.isInteger(p.containerPort))
        appPorts.push(p.containerPort);
  const served = appPorts.filter((p) => !read.skipInboundPorts.includes(p));
  const httpPort = served.find((p) => !read.opaquePorts.includes(p));
  const opaqueServed = served.filter((p) => read.opaquePorts.includes(p));
  const config: KubeJson = {
    // kubelet probes the pod IP; POST /shutdown still answers loopback clients only.
    admin: { listen: `0.0.0.0:${PROXY_PORTS.admin}` },
    log: { level: read.logLevel },
    // Below the pod's default terminationGracePeriodSeconds (30).
    shutdown: { gracePeriod: "25s" },
    outbound: {
      listen: `127.0.0.1:${PROXY_PORTS.outbound}`,
      unknownAuthority: "passthrough",
      services: read.outbound.map((o) => {
        const sameNs = o.namespace === namespace;
        return {
          name: sameNs ? o.service : `${o.service}.${o.namespace}`,
          authorities: [
            ...(sameNs ? [o.service] : []),
            `${o.service}.${o.namespace}`,
            `${o.service}.${o.namespace}.svc`,
            `${o.service}.${o.namespace}.svc.${domain}`,
          ],
          discovery: { kubernetes: { service: o.service, namespace: o.namespace, port: o.port } },
        };
      }),
    },
    inbound: {
      listen: `0.0.0.0:${PROXY_PORTS.inbound}`,
      // No HTTP port: the inbound proxy still answers opaque ports; HTTP gets 502 from 127.0.0.1:80.
      app: `127.0.0.1:${httpPort ?? 80}`,
      opaquePorts: read.opaquePorts,
      ...(opaqueServed.length > 0
        ? { ports: Object.fromEntries(opaqueServed.map((p) => [String(p), `127.0.0.1:${p}`])) }
        : {}),
    },
  };
  if (settings.identity) {
    const sa = spec.serviceAccountName ?? spec.serviceAccount ?? "default";
    config.identity = {
      trustDomain: settings.trustDomain,
      id: `spiffe://${settings.trustDomain}/ns/${namespace}/sa/${sa}`,
      issuer: {
        url: settings.identity.issuerUrl,
        tokenFile: `${MESH_DIR}/token`,
        bundleFile: `${MESH_DIR}/identity-ca.pem`,
      },
    };
  }
  const merged = read.overrides ? merge(config, read.overrides) : config;
  const result = validateConfig(merged);
  if (!result.ok)
    throw new AnnotationError(
      read.overrides ? ANNOTATIONS.proxyConfigOverrides : ANNOTATIONS.proxyConfig,
      ctx.object,
      `the proxy config would be invalid: ${result.problems.map(formatProblem).join("; ")}`,
    );
  return merged;
}

function probe(path: string, extra: KubeJson): KubeJson {
  return { httpGet: { path, port: "mesh-admin" }, ...extra };
}

function sidecar(read: Read): KubeJson {
  return {
    name: PROXY_CONTAINER,
    image: read.image,
    imagePullPolicy: "IfNotPresent",
    // A native sidecar: started (and ready, per the startup probe) before the app, stopped
    // after it, and it does not keep a Job's pod running once the app is done.
    restartPolicy: "Always",
    ports: [
      { name: "mesh-outbound", containerPort: PROXY_PORTS.outbound },
      { name: "mesh-inbound", containerPort: PROXY_PORTS.inbound },
      { name: "mesh-admin", containerPort: PROXY_PORTS.admin },
    ],
    env: [{ name: "MESH_PROXY_CONFIG", value: `${MESH_DIR}/proxy.yaml` }],
    volumeMounts: [
      { name: CONFIG_VOLUME, mountPath: MESH_DIR, readOnly: true },
      { name: API_VOLUME, mountPath: SA_DIR, readOnly: true },
    ],
    startupProbe: probe("/ready", { periodSeconds: 1, failureThreshold: 120 }),
    readinessProbe: probe("/ready", { periodSeconds: 5, failureThreshold: 2 }),
    livenessProbe: probe("/live", { periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 }),
    resources: read.resources,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
  };
}

function volumes(ctx: Ctx): KubeJson[] {
  const annotation = (key: string) => ({ fieldPath: `metadata.annotations['${key}']` });
  return [
    {
      // The config and the issuer's CA come from the pod's own annotations (downward API),
      // so the webhook, which can only change the pod, can inject without a ConfigMap per
      // pod; the token proves the pod's ServiceAccount to the issuer.
      name: CONFIG_VOLUME,
      projected: {
        sources: [
          {
            downwardAPI: {
              items: [
                { path: "proxy.yaml", fieldRef: annotation(ANNOTATIONS.proxyConfig) },
                ...(ctx.settings.identity
                  ? [{ path: "identity-ca.pem", fieldRef: annotation(ANNOTATIONS.identityCa) }]
                  : []),
              ],
            },
          },
          ...(ctx.settings.identity
            ? [
                {
                  serviceAccountToken: {
                    path: "token",
                    audience: ctx.settings.identity.audience,
                    expirationSeconds: 3600,
                  },
                },
              ]
            : []),
        ],
      },
    },
    {
      // API access for discovery.kubernetes in the sidecar only: the pod's automounted
      // token (if any) reaches the app's containers, this one reaches just the proxy.
      name: API_VOLUME,
      projected: {
        sources: [
          { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
          { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
          {
            downwardAPI: {
              items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }],
            },
          },
        ],
      },
    },
  ];
}
