/**
 * examples/kubernetes/manual stays deployable: the ConfigMap's proxy config validates against the
 * proxy's schema (with the env overrides the pod sets), and the manifests agree with it and
 * with the image on ports, probes, config path, memory and shutdown timing.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type ProxyConfig, parseHostPort, validateConfig } from "../../src/index.js";

const EXAMPLE = fileURLToPath(new URL("../../../../examples/kubernetes/manual/", import.meta.url));

interface Container {
  name: string;
  image: string;
  args?: string[];
  restartPolicy?: string;
  env?: { name: string; value: string }[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
}
interface Probe {
  httpGet: { path: string; port: string | number };
}
// biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below.
type Manifest = any;

function load(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(`${EXAMPLE}${file}`, "utf8")).map((d) => d.toJS());
}

const [configMap] = load("configmap.yaml");
const [deployment] = load("deployment.yaml");
const services = load("service.yaml");
const [kustomization] = load("kustomization.yaml");
const pod = deployment.spec.template.spec;
const sidecar: Container = pod.initContainers.find((c: Container) => c.name === "mesh-proxy");
const app: Container = pod.containers.find((c: Container) => c.name === "app");

function env(container: Container): Record<string, string> {
  return Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
}

function port(container: Container, name: string | number): number {
  if (typeof name === "number") return name;
  const found = container.ports?.find((p) => p.name === name);
  if (!found) throw new Error(`${container.name}: expected a port named ${name}, got none`);
  return found.containerPort;
}

function mebibytes(quantity: string): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`expected a quantity in Mi or Gi, got ${quantity}`);
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1);
}

function proxyConfig(): ProxyConfig {
  const raw = parseAllDocuments(configMap.data["proxy.yaml"])[0]?.toJS();
  const result = validateConfig(raw, env(sidecar));
  if (!result.ok) throw new Error(JSON.stringify(result.problems, null, 2));
  return result.config;
}

describe("examples/kubernetes/manual", () => {
  it("has a proxy config that validates, with the pod's MESH_PROXY_* overrides applied", () => {
    const config = proxyConfig();
    expect(config.outbound?.services.map((s) => s.name)).toContain("authors");
    expect(config.inbound?.app).toBe("127.0.0.1:8080");
  });

  it("mounts the config where the image reads it, as a directory so live edits arrive", () => {
    const mount = sidecar.volumeMounts?.find((m) => m.mountPath === "/etc/mesh");
    expect(mount).toMatchObject({ readOnly: true });
    expect(mount?.subPath).toBeUndefined();
    const volume = pod.volumes.find((v: Manifest) => v.name === mount?.name);
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data)).toEqual(["proxy.yaml"]);
  });

  it("exposes the proxy's listeners and probes its admin /ready and /live from the pod IP", () => {
    const config = proxyConfig();
    const admin = parseHostPort(config.admin.listen)!;
    expect(admin.host).toBe("0.0.0.0"); // kubelet probes the pod IP, not loopback
    expect(port(sidecar, "mesh-admin")).toBe(admin.port);
    expect(port(sidecar, "mesh-inbound")).toBe(parseHostPort(config.inbound!.listen)!.port);
    expect(port(sidecar, "mesh-outbound")).toBe(parseHostPort(config.outbound!.listen)!.port);
    for (const probe of [sidecar.startupProbe, sidecar.readinessProbe]) {
      expect(probe?.httpGet.path).toBe("/ready");
      expect(port(sidecar, probe!.httpGet.port)).toBe(admin.port);
    }
    expect(sidecar.livenessProbe?.httpGet.path).toBe("/live");
    expect(port(sidecar, sidecar.livenessProbe!.httpGet.port)).toBe(admin.port);
  });

  it("runs the proxy as a native sidecar, non-root, read-only, with no capabilities", () => {
    expect(sidecar.restartPolicy).toBe("Always");
    expect(sidecar.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("gives V8 a heap that fits the memory limit, and drains before the pod is killed", () => {
    const options = env(sidecar).NODE_OPTIONS ?? "";
    const oldSpace = Number(/--max-old-space-size=(\d+)/.exec(options)?.[1]);
    const semiSpace = Number(/--max-semi-space-size=(\d+)/.exec(options)?.[1]);
    // Young generation is three semi-spaces; leave room for code, buffers and sockets.
    const heap = oldSpace + 3 * semiSpace;
    expect(heap).toBeLessThan(0.75 * mebibytes(sidecar.resources.limits!.memory!));
    expect(sidecar.resources.limits?.cpu).toBeUndefined();

    const graceMs = proxyConfig().shutdown.gracePeriod;
    expect(graceMs).toBeLessThan(pod.terminationGracePeriodSeconds * 1000);
  });

  it("points the app at the outbound listener and serves it on the inbound's app address", () => {
    const config = proxyConfig();
    expect(env(app).HTTP_PROXY).toBe(`http://${config.outbound!.listen}`);
    expect(env(app).NO_PROXY).toContain("127.0.0.1");
    const appPort = parseHostPort(config.inbound!.app)!.port;
    expect(app.args).toContain(`--http-port=${appPort}`);
  });

  it("routes the Services to the proxy's inbound port, and discovery to peers' inbound", () => {
    const config = proxyConfig();
    const inboundPort = parseHostPort(config.inbound!.listen)!.port;
    for (const service of services) {
      for (const p of service.spec.ports) expect(port(sidecar, p.targetPort)).toBe(inboundPort);
    }
    // discovery.kubernetes names a Service port whose targetPort is the peers' inbound.
    const books = services.find((s: Manifest) => s.metadata.name === "books");
    for (const service of config.outbound!.services) {
      const k = service.discovery?.kubernetes;
      expect(k).toBeDefined();
      const named = books.spec.ports.find(
        (p: Manifest) => p.name === k!.port || p.port === k!.port,
      );
      expect(port(sidecar, named.targetPort)).toBe(inboundPort);
    }
  });

  it("lets the sidecar (only) list and watch what discovery.kubernetes reads", () => {
    const [account, role, binding] = load("rbac.yaml");
    expect(pod.serviceAccountName).toBe(account.metadata.name);
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: account.metadata.name }]);
    const can = (group: string, resource: string) =>
      role.rules.some(
        (r: Manifest) =>
          r.apiGroups.includes(group) &&
          r.resources.includes(resource) &&
          ["list", "watch"].every((v) => r.verbs.includes(v)),
      );
    expect(can("discovery.k8s.io", "endpointslices")).toBe(true);
    expect(can("", "services")).toBe(true);
    expect(can("", "pods")).toBe(true);
    // The token is mounted where the in-cluster config reads it, in the sidecar and not the app.
    const tokenDir = "/var/run/secrets/kubernetes.io/serviceaccount";
    expect(sidecar.volumeMounts?.some((m) => m.mountPath === tokenDir)).toBe(true);
    expect(app.volumeMounts?.some((m) => m.mountPath === tokenDir) ?? false).toBe(false);
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it("lists every manifest in kustomization.yaml", () => {
    for (const file of kustomization.resources) expect(existsSync(`${EXAMPLE}${file}`)).toBe(true);
    expect(kustomization.images[0].name).toBe(sidecar.image);
  });
});
