import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { KubeApiClient } from "@mesh/balancer";
import { createTrustAnchor } from "@mesh/tls-identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import {
  type FakeKubeApiserver,
  startFakeKubeApiserver,
} from "../../../../test/fake-kube-apiserver.js";
import { injectManifests } from "../../src/kubernetes/inject/manifests.js";
import type { InjectSettings } from "../../src/kubernetes/inject/pod.js";
import { type Injector, startInjector } from "../../src/kubernetes/injector/webhook.js";
import { CLI, tempDir } from "../helpers.js";
import { validateObject } from "./schema.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON
type Json = Record<string, any>;

const anchor = createTrustAnchor({ trustDomain: "mesh.example" });
const ROOT = anchor.toPem().certificatePem;
const SERVICE_DNS = "mesh-proxy-injector.mesh.svc";
const serving = anchor.issueServerCertificate({ dnsNames: [SERVICE_DNS] });
const settings: InjectSettings = {
  image: "registry.example/mesh-proxy:1",
  trustDomain: "mesh.example",
  clusterDomain: "cluster.local",
  identity: {
    issuerUrl: "https://mesh-identity.mesh.svc:8443",
    ca: ROOT,
    audience: "mesh-identity",
  },
};

/** A Pod as the ReplicaSet controller creates it (generateName, no name yet). */
function replicaSetPod(annotations?: Record<string, string>): Json {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: "books-7d9f8c6b5-",
      namespace: "shop",
      labels: { app: "books", "pod-template-hash": "7d9f8c6b5" },
      ...(annotations ? { annotations } : {}),
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "books-7d9f8c6b5",
          uid: "9b0c7f1e-1b7a-4c1e-9d6e-2f3c5b7a8d90",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      serviceAccountName: "books",
      containers: [
        {
          name: "app",
          image: "registry.example/books:1",
          ports: [{ containerPort: 8080, protocol: "TCP" }],
          resources: {},
          terminationMessagePath: "/dev/termination-log",
          terminationMessagePolicy: "File",
          imagePullPolicy: "IfNotPresent",
        },
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      schedulerName: "default-scheduler",
    },
    status: {},
  };
}

/**
 * An AdmissionReview as the API server sends it for a pod create (shape from the Kubernetes
 * reference, "Dynamic Admission Control": request.kind/resource/requestKind, userInfo, options).
 */
function review(
  object: Json,
  namespace = "shop",
  uid = "705ab4f5-6393-11e8-b7cc-42010a800002",
): Json {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      requestKind: { group: "", version: "v1", kind: "Pod" },
      requestResource: { group: "", version: "v1", resource: "pods" },
      namespace,
      operation: "CREATE",
      userInfo: {
        username: "system:serviceaccount:kube-system:replicaset-controller",
        uid: "014fbff9a07c",
        groups: [
          "system:serviceaccounts",
          "system:serviceaccounts:kube-system",
          "system:authenticated",
        ],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" },
    },
  };
}

/** Posts over HTTPS, verifying the webhook's certificate as the API server does (caBundle). */
function post(url: string, path: string, body: unknown): Promise<{ status: number; body: Json }> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method: path === "/ready" ? "GET" : "POST",
        ca: ROOT,
        servername: SERVICE_DNS,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(path === "/ready" ? undefined : text);
  });
}

/** RFC 6902 add/replace/remove on plain JSON (what the API server does with the patch). */
function applyPatch(doc: Json, ops: { op: string; path: string; value?: unknown }[]): Json {
  const out = structuredClone(doc);
  for (const op of ops) {
    const keys = op.path
      .split("/")
      .slice(1)
      .map((k) => k.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = keys.pop() as string;
    // biome-ignore lint/suspicious/noExplicitAny: walking JSON
    const parent = keys.reduce((o: any, k) => o[k], out);
    if (Array.isArray(parent)) {
      if (op.op === "add") parent.splice(Number(last), 0, op.value);
      else if (op.op === "remove") parent.splice(Number(last), 1);
      else parent[Number(last)] = op.value;
    } else if (op.op === "remove") delete parent[last];
    else parent[last] = op.value;
  }
  return out;
}

describe("mesh-proxy injector (admission webhook)", () => {
  let api: FakeKubeApiserver;
  let injector: Injector;

  beforeAll(async () => {
    api = await startFakeKubeApiserver({ tokens: ["injector-token"] });
    api.apply({
      kind: "Namespace",
      metadata: { name: "shop", annotations: { "mesh.dev/inject": "enabled" } },
    });
    api.apply({ kind: "Namespace", metadata: { name: "plain" } });
    const client = new KubeApiClient({ server: api.url, ca: api.ca, token: "injector-token" });
    injector = await startInjector({
      settings,
      ownNamespace: "mesh",
      namespaceAnnotations: async (ns) =>
        (await client.request<Json>("GET", `/api/v1/namespaces/${ns}`)).metadata?.annotations ?? {},
      cert: serving.certificatePem,
      key: serving.keyPem,
      host: "127.0.0.1",
      port: 0,
    });
  });
  afterAll(async () => {
    await injector?.close();
    await api?.close();
  });

  it("injects a pod of an annotated namespace with the same change as `mesh-proxy inject`", async () => {
    const pod = replicaSetPod();
    const r = await post(injector.url, "/inject", review(pod));
    expect(r.status).toBe(200);
    expect(r.body.apiVersion).toBe("admission.k8s.io/v1");
    expect(r.body.kind).toBe("AdmissionReview");
    const res = r.body.response;
    expect(res).toMatchObject({
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      allowed: true,
      patchType: "JSONPatch",
    });
    const ops = JSON.parse(Buffer.from(res.patch, "base64").toString("utf8"));
    const patched = applyPatch(pod, ops);
    await validateObject(patched);
    expect(patched.spec.initContainers[0]).toMatchObject({
      name: "mesh-proxy",
      restartPolicy: "Always",
    });
    // The namespace was read from the API server.
    expect(api.requests).toContain("GET /api/v1/namespaces/shop");
    // Same code path: inject of the same Pod gives the same pod.
    const viaCli = injectManifests(stringify(pod), { settings });
    const cliPod = parseAllDocuments(viaCli.output)[0]?.toJS() as Json;
    expect(patched).toEqual(cliPod);
    // A second admission of the injected pod changes nothing.
    const again = await post(injector.url, "/inject", review(patched));
    expect(again.body.response).toEqual({
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      allowed: true,
    });
  });

  it("honours the pod's annotation over its namespace's, and leaves other pods alone", async () => {
    const cases: [string, Json, string, boolean][] = [
      [
        "enabled pod, plain namespace",
        replicaSetPod({ "mesh.dev/inject": "enabled" }),
        "plain",
        true,
      ],
      ["plain pod, plain namespace", replicaSetPod(), "plain", false],
      [
        "disabled pod, enabled namespace",
        replicaSetPod({ "mesh.dev/inject": "disabled" }),
        "shop",
        false,
      ],
      ["kube-system", replicaSetPod({ "mesh.dev/inject": "enabled" }), "kube-system", false],
      ["its own namespace", replicaSetPod({ "mesh.dev/inject": "enabled" }), "mesh", false],
    ];
    for (const [what, pod, ns, injected] of cases) {
      const r = await post(injector.url, "/inject", review(pod, ns, `uid-${what}`));
      expect(r.body.response.allowed, what).toBe(true);
      expect(r.body.response.uid).toBe(`uid-${what}`);
      expect(r.body.response.patch !== undefined, what).toBe(injected);
    }
    expect(api.requests).not.toContain("GET /api/v1/namespaces/kube-system");
    const cp = replicaSetPod({ "mesh.dev/inject": "enabled" });
    cp.metadata.labels["mesh.dev/control-plane"] = "identity";
    expect((await post(injector.url, "/inject", review(cp))).body.response.patch).toBeUndefined();
    // Not a pod create: allowed as is.
    const update = review(replicaSetPod());
    update.request.operation = "UPDATE";
    expect((await post(injector.url, "/inject", update)).body.response).toEqual({
      uid: update.request.uid,
      allowed: true,
    });
  });

  it("refuses a pod with an invalid annotation, naming it; allows (with a warning) when the namespace cannot be read", async () => {
    const bad = replicaSetPod({ "config.mesh.dev/proxy-memory-limit": "a lot" });
    const r = await post(injector.url, "/inject", review(bad));
    expect(r.body.response.allowed).toBe(false);
    expect(r.body.response.status.code).toBe(400);
    expect(r.body.response.status.message).toBe(
      'Pod/books-7d9f8c6b5-* in namespace shop: annotation config.mesh.dev/proxy-memory-limit: expected a Kubernetes quantity such as 100m, 64Mi or 1Gi, got "a lot"',
    );
    const missing = await post(injector.url, "/inject", review(replicaSetPod(), "nowhere"));
    expect(missing.body.response.allowed).toBe(true);
    expect(missing.body.response.patch).toBeUndefined();
    expect(missing.body.response.warnings[0]).toContain(
      "not injected: namespace nowhere could not be read",
    );
  });

  it("speaks HTTPS with a certificate the caBundle verifies, and rejects what is not an AdmissionReview", async () => {
    expect((await post(injector.url, "/ready", "")).status).toBe(200);
    const notJson = await post(injector.url, "/inject", "{");
    expect(notJson.status).toBe(400);
    const v1beta1 = await post(injector.url, "/inject", {
      ...review(replicaSetPod()),
      apiVersion: "admission.k8s.io/v1beta1",
    });
    expect(v1beta1.status).toBe(400);
    expect(v1beta1.body.error).toContain("expected an admission.k8s.io/v1 AdmissionReview");
    // A client that expects another name refuses the certificate.
    await expect(
      new Promise((resolve, reject) => {
        const req = request(
          `${injector.url}/ready`,
          { ca: ROOT, servername: "evil.example" },
          resolve,
        );
        req.on("error", reject);
        req.end();
      }),
    ).rejects.toThrow(/altnames|does not match/i);
  });
});

describe("mesh-proxy injector (the command)", () => {
  it("serves with install's settings and TLS files, reads namespaces through its kubeconfig, exits 0 on SIGTERM", async () => {
    const dir = tempDir();
    const api = await startFakeKubeApiserver({ tokens: ["sa-token"] });
    try {
      api.apply({
        kind: "Namespace",
        metadata: { name: "shop", annotations: { "mesh.dev/inject": "enabled" } },
      });
      api.writeKubeconfig(join(dir, "kubeconfig"), "sa-token");
      writeFileSync(join(dir, "tls.crt"), serving.certificatePem);
      writeFileSync(join(dir, "tls.key"), serving.keyPem);
      writeFileSync(
        join(dir, "settings.yaml"),
        stringify({ ...settings, identity: settings.identity }),
      );
      const child = spawn(
        process.execPath,
        [
          CLI,
          "injector",
          `--settings=${join(dir, "settings.yaml")}`,
          `--tls-cert=${join(dir, "tls.crt")}`,
          `--tls-key=${join(dir, "tls.key")}`,
          `--kubeconfig=${join(dir, "kubeconfig")}`,
          "--host=127.0.0.1",
          "--port=0",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stdout }).on("line", (line) => {
          const l = JSON.parse(line);
          if (l.msg === "injector listening") resolve(l.port);
        });
        exited.then((code) => reject(new Error(`injector exited ${code}`)));
      });
      const r = await post(`https://127.0.0.1:${port}`, "/inject", review(replicaSetPod()));
      expect(r.body.response.patchType).toBe("JSONPatch");
      const patched = applyPatch(
        replicaSetPod(),
        JSON.parse(Buffer.from(r.body.response.patch, "base64").toString()),
      );
      expect(patched.spec.initContainers[0].image).toBe("registry.example/mesh-proxy:1");
      expect(api.requests).toContain("GET /api/v1/namespaces/shop");
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      await api.close();
    }
  });
});
