import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrustAnchor } from "@mesh/tls-identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  endpointSlice,
  type FakeKubeApiserver,
  type KubeObject,
  startFakeKubeApiserver,
} from "../../../../test/fake-kube-apiserver.js";
import { startInjector } from "../../src/kubernetes/injector/webhook.js";
import { type Install, renderInstall } from "../../src/kubernetes/install/render.js";
import { runMain } from "./run-main.js";
import { validateYaml } from "./schema.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON
type Json = Record<string, any>;

const dir = mkdtempSync(join(tmpdir(), "mesh-install-"));

const run = runMain;

const find = (objects: Json[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as Json;

describe("mesh-proxy install", () => {
  it("renders a schema-valid, least-privilege control plane and keeps the root's key out of it", async () => {
    const r = await run([
      "install",
      "--trust-domain=mesh.example",
      "--mesh-namespaces=shop,reviews",
      "--proxy-image=registry.example/mesh-proxy:1",
      "--identity-image=registry.example/mesh-identity:1",
      `--trust-anchor-out=${join(dir, "root")}`,
      `--settings-out=${join(dir, "settings.yaml")}`,
    ]);
    expect(r.code, r.err).toBe(0);
    const objects = await validateYaml(r.out);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        "Namespace/mesh",
        "ServiceAccount/mesh-identity",
        "ClusterRole/mesh-identity",
        "ClusterRoleBinding/mesh-identity",
        "Secret/mesh-identity-issuer",
        "Secret/mesh-identity-tls",
        "ConfigMap/mesh-trust-roots",
        "Deployment/mesh-identity",
        "Service/mesh-identity",
        "PodDisruptionBudget/mesh-identity",
        "NetworkPolicy/mesh-identity",
        "ServiceAccount/mesh-proxy-injector",
        "ClusterRole/mesh-proxy-injector",
        "ClusterRoleBinding/mesh-proxy-injector",
        "Secret/mesh-proxy-injector-tls",
        "ConfigMap/mesh-proxy-injector",
        "Deployment/mesh-proxy-injector",
        "Service/mesh-proxy-injector",
        "PodDisruptionBudget/mesh-proxy-injector",
        "MutatingWebhookConfiguration/mesh-proxy-injector",
        "ClusterRole/mesh-proxy-discovery",
        "RoleBinding/mesh-proxy-discovery",
        "RoleBinding/mesh-proxy-discovery",
      ].sort(),
    );
    // Least privilege: exactly these rules, no wildcards anywhere.
    expect(find(objects, "ClusterRole", "mesh-identity").rules).toEqual([
      { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
    ]);
    expect(find(objects, "ClusterRole", "mesh-proxy-injector").rules).toEqual([
      { apiGroups: [""], resources: ["namespaces"], verbs: ["get"] },
    ]);
    expect(find(objects, "ClusterRole", "mesh-proxy-discovery").rules).toEqual([
      {
        apiGroups: ["discovery.k8s.io"],
        resources: ["endpointslices"],
        verbs: ["get", "list", "watch"],
      },
      { apiGroups: [""], resources: ["services", "pods"], verbs: ["get", "list", "watch"] },
    ]);
    expect(r.out).not.toContain("'*'");
    expect(r.out).not.toMatch(/- "\*"/);
    const bindings = objects.filter((o) => o.kind === "RoleBinding");
    expect(bindings.map((b) => b.metadata.namespace)).toEqual(["shop", "reviews"]);
    expect(bindings[0]?.subjects.map((s: Json) => s.name)).toEqual([
      "system:serviceaccounts:shop",
      "system:serviceaccounts:reviews",
    ]);
    // The webhook: Ignore on failure, never the system namespaces or the control plane.
    const hook = find(objects, "MutatingWebhookConfiguration", "mesh-proxy-injector").webhooks[0];
    expect(hook.failurePolicy).toBe("Ignore");
    expect(hook.namespaceSelector.matchExpressions[0].values).toEqual([
      "kube-system",
      "kube-public",
      "kube-node-lease",
      "mesh",
    ]);
    expect(hook.clientConfig.service).toEqual({
      name: "mesh-proxy-injector",
      namespace: "mesh",
      path: "/inject",
      port: 443,
    });
    // The root: public parts in the cluster, its key only in the folder asked for (0600).
    const rootPem = readFileSync(join(dir, "root", "root.pem"), "utf8");
    const rootKey = readFileSync(join(dir, "root", "root.key.pem"), "utf8");
    expect(statSync(join(dir, "root", "root.key.pem")).mode & 0o777).toBe(0o600);
    expect(r.out).not.toContain(rootKey.trim().split("\n")[1]);
    expect(Buffer.from(hook.clientConfig.caBundle, "base64").toString()).toBe(rootPem);
    const root = new X509Certificate(rootPem);
    const issuer = find(objects, "Secret", "mesh-identity-issuer").stringData;
    expect(new X509Certificate(issuer["ca.pem"]).verify(root.publicKey)).toBe(true);
    expect(issuer["bundle.pem"]).toBe(rootPem);
    const injectorTls = new X509Certificate(
      find(objects, "Secret", "mesh-proxy-injector-tls").stringData["tls.crt"],
    );
    expect(injectorTls.checkHost("mesh-proxy-injector.mesh.svc")).toBe(
      "mesh-proxy-injector.mesh.svc",
    );
    expect(injectorTls.verify(root.publicKey)).toBe(true);
    // The issuer runs the TokenReview authenticator with the install's CA and serving cert.
    const issuerArgs = find(objects, "Deployment", "mesh-identity").spec.template.spec.containers[0]
      .args;
    expect(issuerArgs).toEqual(
      expect.arrayContaining(["serve", "--kubernetes", "--ca=/var/run/mesh-identity/ca"]),
    );
    // The injector and `inject --settings` share the settings.
    const settings = parse(find(objects, "ConfigMap", "mesh-proxy-injector").data["settings.yaml"]);
    expect(parse(readFileSync(join(dir, "settings.yaml"), "utf8"))).toEqual(settings);
    expect(settings.identity).toEqual({
      issuerUrl: "https://mesh-identity.mesh.svc.cluster.local:8443",
      audience: "mesh-identity",
      ca: rootPem,
    });
    // Two replicas and a PDB each, so a node drain keeps both serving.
    expect(find(objects, "PodDisruptionBudget", "mesh-identity").spec.minAvailable).toBe(1);
    expect(find(objects, "Deployment", "mesh-proxy-injector").spec.replicas).toBe(2);
    const np = find(objects, "NetworkPolicy", "mesh-identity").spec;
    expect(np.ingress).toEqual([
      { from: [{ namespaceSelector: {} }], ports: [{ protocol: "TCP", port: 8443 }] },
    ]);
  });

  it("signs under a given root, and refuses bad options with a message naming them", async () => {
    const root = join(dir, "root");
    const again = await run([
      "install",
      "--trust-domain=mesh.example",
      `--trust-anchor=${join(root, "root.pem")}`,
      `--trust-anchor-key=${join(root, "root.key.pem")}`,
    ]);
    expect(again.code, again.err).toBe(0);
    const objects = await validateYaml(again.out);
    // Without --identity-image the issuer runs from the proxy image, which ships mesh-identity.
    const issuer = find(objects, "Deployment", "mesh-identity").spec.template.spec.containers[0];
    expect(issuer.image).toMatch(/^mesh-proxy:/);
    expect(issuer.command).toEqual(["/nodejs/bin/node", "/app/mesh-identity.mjs"]);
    expect(issuer.args[0]).toBe("serve");
    const rootCert = new X509Certificate(readFileSync(join(root, "root.pem")));
    const ca = new X509Certificate(
      find(objects, "Secret", "mesh-identity-issuer").stringData["ca.pem"],
    );
    expect(ca.verify(rootCert.publicKey)).toBe(true);
    expect((await run(["install", "--replicas=0"])).err).toContain(
      '--replicas: expected an integer in 1..100, got "0"',
    );
    expect((await run(["install", "--mesh-namespaces=Shop"])).err).toContain(
      'expected a namespace name, got "Shop"',
    );
    expect((await run(["install", `--trust-anchor=${join(root, "root.pem")}`])).err).toContain(
      "--trust-anchor and --trust-anchor-key go together",
    );
  });
});

/** Puts what `install` renders into the fake API server, as kubectl apply would. */
function applyInstall(api: FakeKubeApiserver, install: Install): void {
  for (const o of install.objects) {
    const obj = structuredClone(o) as KubeObject;
    if (obj.stringData) {
      // The API server stores stringData as base64 data.
      obj.data = Object.fromEntries(
        Object.entries(obj.stringData as Record<string, string>).map(([k, v]) => [
          k,
          Buffer.from(v).toString("base64"),
        ]),
      );
      delete obj.stringData;
    }
    if (obj.kind === "Deployment") obj.status = { replicas: 2, readyReplicas: 2 };
    try {
      api.apply(obj);
    } catch {
      // Kinds the fake does not serve (RBAC, PDB, NetworkPolicy): check asks SubjectAccessReview.
    }
  }
  api.apply(
    endpointSlice({
      namespace: "mesh",
      service: "mesh-proxy-injector",
      ports: [{ name: "https", port: 8443 }],
      endpoints: [{ ip: "10.0.0.7", pod: "mesh-proxy-injector-abc" }],
    }),
  );
  api.grants.set("system:serviceaccount:mesh:mesh-identity", [
    "create authentication.k8s.io/tokenreviews",
  ]);
  api.grants.set("system:serviceaccount:mesh:mesh-proxy-injector", ["get /namespaces"]);
  // A meshed namespace listed in --mesh-namespaces: its RoleBinding lets its pods' accounts read.
  api.apply({
    kind: "Namespace",
    metadata: { name: "shop", annotations: { "mesh.dev/inject": "enabled" } },
  });
  api.grants.set("system:serviceaccounts:shop", ["watch discovery.k8s.io/endpointslices"]);
}

describe("mesh-proxy check --kubernetes (against the fake API server)", () => {
  let api: FakeKubeApiserver;
  let kubeconfig: string;
  let install: Install;

  beforeAll(async () => {
    api = await startFakeKubeApiserver({ tokens: ["admin"] });
    kubeconfig = join(dir, "kubeconfig");
    api.writeKubeconfig(kubeconfig, "admin");
    install = renderInstall({
      proxyImage: "p:1",
      identityImage: "i:1",
      trustDomain: "mesh.example",
    });
    applyInstall(api, install);
  });
  afterAll(async () => {
    await api?.close();
  });

  const check = (...extra: string[]) =>
    run(["check", "--kubernetes", `--kubeconfig=${kubeconfig}`, ...extra]);

  it("passes on a healthy install", async () => {
    const r = await check();
    expect(r.code, r.out).toBe(0);
    for (const line of [
      "√ Kubernetes API reachable",
      "√ namespace mesh: exists",
      "√ RBAC: mesh-identity may create authentication.k8s.io/tokenreviews: allowed",
      "√ RBAC: mesh-proxy-injector may get namespaces: allowed",
      "√ RBAC: proxies in namespace shop may watch endpointslices: allowed",
      "√ issuer ready: 2/2 replicas ready",
      "√ injector ready: 2/2 replicas ready",
      "√ trust root: valid for 3649 days",
      "√ issuer CA certificate: valid for 364 days",
      "√ injector serving certificate: valid for 364 days",
      "√ injector settings: injected pods verify the issuer with the trust root",
      "√ webhook configured: failurePolicy Ignore",
      "√ webhook caBundle: verifies the injector's certificate",
      "√ webhook reachable: service mesh/mesh-proxy-injector has 1 ready endpoint(s)",
      "Status check results are √",
    ])
      expect(r.out).toContain(line);
  });

  it("catches what operators get wrong", async () => {
    // A forgotten ClusterRoleBinding, an issuer that is not ready, an injector with no endpoints.
    api.grants.delete("system:serviceaccount:mesh:mesh-identity");
    const issuer = structuredClone(
      install.objects.find((o) => o.kind === "Deployment" && o.metadata.name === "mesh-identity"),
    ) as KubeObject;
    issuer.status = { replicas: 2, readyReplicas: 0 };
    api.apply(issuer);
    api.remove("EndpointSlice", "mesh", "mesh-proxy-injector-abcde");
    // A namespace annotated for injection but left out of --mesh-namespaces.
    api.apply({
      kind: "Namespace",
      metadata: { name: "orders", annotations: { "mesh.dev/inject": "enabled" } },
    });
    let r = await check();
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      "× RBAC: mesh-identity may create authentication.k8s.io/tokenreviews: denied (no RBAC policy matched)",
    );
    expect(r.out).toContain("× issuer ready: deployment mesh/mesh-identity has 0/2 ready replicas");
    expect(r.out).toContain(
      "× webhook reachable: service mesh/mesh-proxy-injector has no ready endpoints: pods start unmeshed",
    );
    expect(r.out).toContain(
      "× RBAC: proxies in namespace orders may watch endpointslices: denied (no RBAC policy matched): injected proxies there cannot discover endpoints; add it to mesh-proxy install --mesh-namespaces and re-apply",
    );
    expect(r.out).toContain("Status check results are × (4 failed)");

    // Certificates near their end warn; a webhook re-rendered with a new root does not verify.
    r = await check("--warn-days=400");
    expect(r.out).toMatch(/‼ issuer CA certificate: expires in 36\d days/);
    const other = renderInstall({
      proxyImage: "p:1",
      identityImage: "i:1",
      trustDomain: "mesh.example",
    });
    api.apply(other.objects.find((o) => o.kind === "MutatingWebhookConfiguration") as KubeObject);
    api.apply(
      other.objects.find(
        (o) => o.kind === "ConfigMap" && o.metadata.name === "mesh-proxy-injector",
      ) as KubeObject,
    );
    r = await check();
    expect(r.out).toContain(
      "× webhook caBundle: does not verify the certificate in mesh-proxy-injector-tls: the API server will refuse the injector (pods start unmeshed)",
    );
    expect(r.out).toContain(
      "× injector settings: the CA given to injected pods (identity.ca) is not the trust root in mesh-identity-issuer: new pods cannot verify the issuer; apply all of one mesh-proxy install output",
    );
  });

  it("probes a url webhook with a real AdmissionReview, and reports an unreachable API server", async () => {
    const fresh = await startFakeKubeApiserver({ tokens: ["admin"] });
    const kc = join(dir, "kubeconfig-2");
    fresh.writeKubeconfig(kc, "admin");
    const inst = renderInstall({ proxyImage: "p:1", identityImage: "i:1" });
    applyInstall(fresh, inst);
    // An out-of-cluster webhook (clientConfig.url), served under the same root.
    const anchor = TrustAnchor.fromPem(
      "cluster.local",
      inst.trustAnchor.certificatePem,
      inst.trustAnchor.keyPem,
    );
    const tls = anchor.issueServerCertificate({ dnsNames: ["localhost"] });
    const injector = await startInjector({
      settings: inst.settings,
      ownNamespace: "mesh",
      namespaceAnnotations: async () => ({}),
      cert: tls.certificatePem,
      key: tls.keyPem,
      host: "127.0.0.1",
      port: 0,
    });
    const hook = structuredClone(
      inst.objects.find((o) => o.kind === "MutatingWebhookConfiguration"),
    ) as KubeObject;
    const url = `https://localhost:${injector.port}/inject`;
    hook.webhooks[0].clientConfig = { url, caBundle: hook.webhooks[0].clientConfig.caBundle };
    fresh.apply(hook);
    try {
      let r = await run(["check", "--kubernetes", `--kubeconfig=${kc}`]);
      expect(r.out).toContain(`√ webhook reachable: ${url} answered an AdmissionReview`);
      await injector.close();
      r = await run(["check", "--kubernetes", `--kubeconfig=${kc}`]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`× webhook reachable: ${url}: `);
    } finally {
      await injector.close();
      await fresh.close();
    }
    const down = await run(["check", "--kubernetes", `--kubeconfig=${kc}`]);
    expect(down.code).toBe(1);
    expect(down.out).toMatch(/× Kubernetes API reachable: .*ECONNREFUSED/);
  });
});
