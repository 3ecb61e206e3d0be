import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTrustAnchor } from "@mesh/tls-identity";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { validateConfig } from "../../src/config/load.js";
import { runMain } from "./run-main.js";
import { validateYaml } from "./schema.js";

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form JSON
type Json = Record<string, any>;

const dir = mkdtempSync(join(tmpdir(), "mesh-inject-"));

const run = runMain;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const APP = `# The books app, as its team wrote it.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: books
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: { app: books }
  template:
    metadata:
      labels: { app: books }
      annotations:
        config.mesh.dev/outbound-services: authors, ratings.reviews:grpc
    spec:
      serviceAccountName: books
      initContainers:
        - name: migrate # runs after the proxy is ready
          image: registry.example/migrate:1
      containers:
        - name: app
          image: registry.example/books:1 # pinned
          ports:
            - containerPort: 8080
            - containerPort: 5432
          env:
            - { name: LOG, value: debug }
---
apiVersion: v1
kind: Service
metadata: { name: books, namespace: shop }
spec:
  selector: { app: books }
  ports: [{ name: http, port: 80, targetPort: mesh-inbound }]
`;

const docs = (text: string): Json[] => parseAllDocuments(text).map((d) => d.toJS() as Json);
const podOf = (o: Json): Json => {
  switch (o.kind) {
    case "Pod":
      return o;
    case "CronJob":
      return o.spec.jobTemplate.spec.template;
    default:
      return o.spec.template;
  }
};

describe("mesh-proxy inject", () => {
  it("adds the proxy as a native sidecar with probes, resources, security and a valid generated config", async () => {
    const r = await run(["inject", file("app.yaml", APP)]);
    expect(r.code).toBe(0);
    expect(r.err).toContain("Deployment/books injected");
    await validateYaml(r.out);
    const [deploy, svc] = docs(r.out) as [Json, Json];
    const pod = podOf(deploy);
    const proxy = pod.spec.initContainers[0];
    expect(proxy.name).toBe("mesh-proxy");
    expect(proxy.restartPolicy).toBe("Always");
    expect(pod.spec.initContainers[1].name).toBe("migrate"); // after the proxy: meshed too
    expect(proxy.startupProbe.httpGet).toEqual({ path: "/ready", port: "mesh-admin" });
    expect(proxy.livenessProbe.httpGet).toEqual({ path: "/live", port: "mesh-admin" });
    expect(proxy.readinessProbe.httpGet.path).toBe("/ready");
    expect(proxy.resources).toEqual({
      requests: { cpu: "50m", memory: "64Mi" },
      limits: { memory: "256Mi" },
    });
    expect(proxy.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(proxy.env).toContainEqual({
      name: "MESH_PROXY_CONFIG",
      value: "/var/run/mesh/proxy.yaml",
    });
    // The config file is the pod's annotation, projected by the downward API.
    const volume = pod.spec.volumes.find((v: Json) => v.name === "mesh-proxy");
    expect(volume.projected.sources[0].downwardAPI.items[0]).toEqual({
      path: "proxy.yaml",
      fieldRef: { fieldPath: "metadata.annotations['mesh.dev/proxy-config']" },
    });
    const config = parse(pod.metadata.annotations["mesh.dev/proxy-config"]);
    const checked = validateConfig(config);
    expect(checked.ok, JSON.stringify(checked)).toBe(true);
    expect(config.inbound.app).toBe("127.0.0.1:8080"); // 5432 is opaque by default
    expect(config.inbound.ports).toEqual({ "5432": "127.0.0.1:5432" });
    expect(config.outbound.services).toEqual([
      {
        name: "authors",
        authorities: [
          "authors",
          "authors.shop",
          "authors.shop.svc",
          "authors.shop.svc.cluster.local",
        ],
        discovery: { kubernetes: { service: "authors", namespace: "shop", port: "http" } },
      },
      {
        name: "ratings.reviews",
        authorities: [
          "ratings.reviews",
          "ratings.reviews.svc",
          "ratings.reviews.svc.cluster.local",
        ],
        discovery: { kubernetes: { service: "ratings", namespace: "reviews", port: "grpc" } },
      },
    ]);
    // The app reaches the outbound proxy through HTTP_PROXY; its own env stays first.
    const app = pod.spec.containers[0];
    expect(app.env[0]).toEqual({ name: "LOG", value: "debug" });
    expect(app.env).toContainEqual({ name: "HTTP_PROXY", value: "http://127.0.0.1:4140" });
    expect(app.env).toContainEqual({ name: "NO_PROXY", value: "localhost,127.0.0.1,::1" });
    // Comments and objects inject does not touch come out as they went in.
    expect(r.out).toContain("# The books app, as its team wrote it.");
    expect(r.out).toContain("image: registry.example/books:1 # pinned");
    expect(r.out).toContain("- name: migrate # runs after the proxy is ready");
    expect(r.out).toContain("  ports: [{ name: http, port: 80, targetPort: mesh-inbound }]");
    expect(svc.kind).toBe("Service");
  });

  it("is idempotent, and --uninject gives back the input byte for byte", async () => {
    const once = await run(["inject", "-"], APP);
    const twice = await run(["inject", "-"], once.out);
    expect(twice.code).toBe(0);
    expect(twice.out).toBe(once.out);
    expect(twice.err).toContain("Deployment/books unchanged");
    const back = await run(["inject", "--uninject", "-"], twice.out);
    expect(back.out).toBe(APP);
    // An app that sets HTTP_PROXY itself keeps its value, and uninject leaves it.
    const own = APP.replace(
      "{ name: LOG, value: debug }",
      "{ name: HTTP_PROXY, value: http://egress:3128 }",
    );
    const injected = await run(["inject", "-"], own);
    expect(podOf(docs(injected.out)[0] as Json).spec.containers[0].env[0].value).toBe(
      "http://egress:3128",
    );
    expect((await run(["inject", "--uninject", "-"], injected.out)).out).toBe(own);
  });

  it("injects every workload kind, inside Lists too, and unknown fields survive", async () => {
    const pod = (labels: string) => `
      metadata: { labels: { app: ${labels} } }
      spec:
        containers: [{ name: app, image: app:1, ports: [{ containerPort: 9000 }] }]`;
    const input = `apiVersion: v1
kind: Pod
metadata: { name: p }
spec:
  containers: [{ name: app, image: app:1 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: s }
spec:
  serviceName: s
  selector: { matchLabels: { app: s } }
  template:${pod("s")}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: d }
spec:
  selector: { matchLabels: { app: d } }
  template:${pod("d")}
---
apiVersion: batch/v1
kind: Job
metadata: { name: j }
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: app, image: app:1 }]
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: c }
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{ name: app, image: app:1 }]
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: { name: in-list }
    spec:
      selector: { matchLabels: { app: l } }
      template:${pod("l").replaceAll("\n      ", "\n        ")}
---
apiVersion: v1
kind: ConfigMap
metadata: { name: untouched }
data: { a: b }
`;
    const r = await run(["inject", "-"], input);
    expect(r.code, r.err).toBe(0);
    for (const o of [
      "Pod/p",
      "StatefulSet/s",
      "DaemonSet/d",
      "Job/j",
      "CronJob/c",
      "Deployment/in-list",
    ])
      expect(r.err).toContain(`${o} injected`);
    const objects = await validateYaml(r.out);
    expect(objects).toHaveLength(7);
    for (const o of objects.filter((x) => x.kind !== "ConfigMap"))
      expect(podOf(o).spec.initContainers[0]).toMatchObject({
        name: "mesh-proxy",
        restartPolicy: "Always",
      });
    expect(r.out).toContain("data: { a: b }");
    // One-line flow YAML that gains the sidecar turns into block style, readable.
    expect(r.out).toContain("kind: Pod\nmetadata:\n  name: p\n  annotations:\n");
    // The Job's sidecar is native, so the Job completes when its app container exits.
    const job = objects.find((o) => o.kind === "Job") as Json;
    expect(job.spec.template.spec.containers.map((c: Json) => c.name)).toEqual(["app"]);
  });

  it("an invalid annotation is an error naming it and the object; the other objects are still injected", async () => {
    const bad = APP.replace(
      "config.mesh.dev/outbound-services: authors, ratings.reviews:grpc",
      'config.mesh.dev/opaque-ports: "5432,lots"',
    );
    const other = APP.replace("name: books\n  namespace", "name: authors\n  namespace");
    const r = await run(["inject", file("bad.yaml", bad), file("other.yaml", other)]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'error: Deployment/books: annotation config.mesh.dev/opaque-ports: expected ports or ranges such as 5432,4000-4010, got "5432,lots"',
    );
    expect(r.err).toContain("Deployment/authors injected");
    const [books, , authors] = docs(r.out) as Json[];
    expect(podOf(books as Json).spec.initContainers).toHaveLength(1); // left as it was
    expect(podOf(authors as Json).spec.initContainers[0].name).toBe("mesh-proxy");

    for (const [annotation, value, message] of [
      ["config.mesh.dev/proxy-memory-limit", "lots", "expected a Kubernetes quantity"],
      ["config.mesh.dev/proxy-log-level", "loud", "expected trace, debug"],
      [
        "config.mesh.dev/proxy-memory-limit",
        "32Mi",
        'expected at least the memory request (64Mi), got "32Mi"',
      ],
      [
        "config.mesh.dev/proxy-cpu-limit",
        "10m",
        'expected at least the cpu request (50m), got "10m"',
      ],
      ["mesh.dev/inject", "yes", 'expected enabled or disabled, got "yes"'],
      ["config.mesh.dev/outbound-services", "Authors", "expected service[.namespace][:port]"],
      ["config.mesh.dev/opaque-port", "5432", "unknown annotation"],
      [
        "config.mesh.dev/proxy-config-overrides",
        "inbound: { app: nowhere }",
        "inbound.app: expected host:port",
      ],
    ]) {
      const text = APP.replace(
        "config.mesh.dev/outbound-services: authors, ratings.reviews:grpc",
        `${annotation}: ${JSON.stringify(value)}`,
      );
      const x = await run(["inject", "-"], text);
      expect(x.code, annotation).toBe(1);
      expect(x.err).toContain(`Deployment/books: annotation ${annotation}: `);
      expect(x.err).toContain(message);
    }
  });

  it("annotations tune the proxy: resources, log level, overrides, and disabled workloads are skipped", async () => {
    const tuned = APP.replace(
      "config.mesh.dev/outbound-services: authors, ratings.reviews:grpc",
      [
        'config.mesh.dev/proxy-cpu-limit: "1"',
        "config.mesh.dev/proxy-memory-request: 100Mi",
        "config.mesh.dev/proxy-log-level: debug",
        'config.mesh.dev/opaque-ports: "8080"',
        'config.mesh.dev/skip-inbound-ports: "5432"',
        "config.mesh.dev/skip-outbound-hosts: db.internal",
        'config.mesh.dev/proxy-config-overrides: "inbound: { policy: { default: all-authenticated } }"',
      ].join("\n        "),
    );
    const r = await run(["inject", "-", "--proxy-image", "registry.example/mesh-proxy:9"], tuned);
    expect(r.code, r.err).toBe(0);
    const pod = podOf(docs(r.out)[0] as Json);
    const proxy = pod.spec.initContainers[0];
    expect(proxy.image).toBe("registry.example/mesh-proxy:9");
    expect(proxy.resources).toEqual({
      requests: { cpu: "50m", memory: "100Mi" },
      limits: { memory: "256Mi", cpu: "1" },
    });
    const config = parse(pod.metadata.annotations["mesh.dev/proxy-config"]);
    expect(config.log.level).toBe("debug");
    expect(config.inbound.opaquePorts).toEqual([8080]);
    expect(config.inbound.ports).toEqual({ "8080": "127.0.0.1:8080" });
    expect(config.inbound.policy).toEqual({ default: "all-authenticated" });
    expect(pod.spec.containers[0].env).toContainEqual({
      name: "NO_PROXY",
      value: "localhost,127.0.0.1,::1,db.internal",
    });

    // hostNetwork pods would share the node's ports: skipped, said why.
    const host = APP.replace(
      "serviceAccountName: books",
      "serviceAccountName: books\n      hostNetwork: true",
    );
    const h = await run(["inject", "-"], host);
    expect(h.out).toBe(host);
    expect(h.err).toContain("Deployment/books skipped (hostNetwork pods are not injected)");
    // -n names the namespace of objects without one.
    const noNs = APP.replace("  namespace: shop\n", "");
    const other = await run(["inject", "-n", "orders", "-"], noNs);
    const otherConfig = parse(
      podOf(docs(other.out)[0] as Json).metadata.annotations["mesh.dev/proxy-config"],
    );
    expect(otherConfig.outbound.services[0].authorities).toContain(
      "authors.orders.svc.cluster.local",
    );

    const off = APP.replace(
      "config.mesh.dev/outbound-services: authors, ratings.reviews:grpc",
      "mesh.dev/inject: disabled",
    );
    const skipped = await run(["inject", "-"], off);
    expect(skipped.code).toBe(0);
    expect(skipped.out).toBe(off);
    expect(skipped.err).toContain(
      "Deployment/books skipped (annotation mesh.dev/inject: disabled)",
    );
  });

  it("with install's settings, the proxy proves its ServiceAccount to the issuer over TLS it verifies", async () => {
    const anchor = createTrustAnchor({ trustDomain: "mesh.example" });
    const ca = anchor.toPem().certificatePem;
    const settings = file(
      "settings.yaml",
      `image: registry.example/mesh-proxy:1\ntrustDomain: mesh.example\nidentity:\n  issuerUrl: https://mesh-identity.mesh.svc:8443\n  audience: mesh-identity\n  ca: |\n${ca
        .trim()
        .split("\n")
        .map((l) => `    ${l}`)
        .join("\n")}\n`,
    );
    const r = await run(["inject", "--settings", settings, "-"], APP);
    expect(r.code, r.err).toBe(0);
    await validateYaml(r.out);
    const pod = podOf(docs(r.out)[0] as Json);
    const config = parse(pod.metadata.annotations["mesh.dev/proxy-config"]);
    expect(config.identity).toEqual({
      trustDomain: "mesh.example",
      id: "spiffe://mesh.example/ns/shop/sa/books",
      issuer: {
        url: "https://mesh-identity.mesh.svc:8443",
        tokenFile: "/var/run/mesh/token",
        bundleFile: "/var/run/mesh/identity-ca.pem",
      },
    });
    expect(pod.metadata.annotations["mesh.dev/identity-ca"].trim()).toBe(ca.trim());
    const sources = pod.spec.volumes.find((v: Json) => v.name === "mesh-proxy").projected.sources;
    expect(sources).toContainEqual({
      serviceAccountToken: { path: "token", audience: "mesh-identity", expirationSeconds: 3600 },
    });
    expect(sources[0].downwardAPI.items[1]).toEqual({
      path: "identity-ca.pem",
      fieldRef: { fieldPath: "metadata.annotations['mesh.dev/identity-ca']" },
    });
    expect(pod.spec.initContainers[0].image).toBe("registry.example/mesh-proxy:1");

    const broken = file("broken.yaml", "identity: { issuerUrl: http://x, ca: nope }\n");
    const e = await run(["inject", "--settings", broken, "-"], APP);
    expect(e.code).toBe(1);
    expect(e.err).toContain(`${broken}: identity.ca: expected PEM certificates`);
    expect(readFileSync(broken, "utf8")).toContain("nope");
  });
});

describe("mesh-proxy inject input errors", () => {
  it("names a broken YAML document and a missing file; the documents around it are still injected", async () => {
    const broken = `${APP}---\nkind: [unclosed\n`;
    const r = await run(["inject", "-"], broken);
    expect(r.code).toBe(1);
    expect(r.err).toContain("error: document 3: not valid YAML");
    expect(r.err).toContain("Deployment/books injected");
    expect(r.out).toContain("kind: [unclosed");
    const missing = await run(["inject", join(dir, "nope.yaml")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(
      `mesh-proxy inject: ENOENT: no such file or directory, open '${join(dir, "nope.yaml")}'`,
    );
    const usage = await run(["inject", "--bogus"]);
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('mesh-proxy inject: unknown option "--bogus"');
  });
});

describe("the schema check itself", () => {
  it("rejects what the Kubernetes API would reject", async () => {
    const { validateObject } = await import("./schema.js");
    const pod = (spec: Json) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec });
    const containers = [{ name: "a", image: "a" }];
    await expect(validateObject(pod({ containers }))).resolves.toBeUndefined();
    await expect(validateObject(pod({ containers, volumes: [{ configMap: {} }] }))).rejects.toThrow(
      "Pod/p: data/spec/volumes/0 must have required property name",
    );
    await expect(validateObject(pod({ containers: "app" }))).rejects.toThrow(
      /Pod\/p: .*containers/,
    );
  });
});
