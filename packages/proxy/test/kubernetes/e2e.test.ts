/**
 * End to end without a cluster: `install` renders the control plane, `inject` meshes the demo's
 * manifests (examples/kubernetes/app.yaml), and each pod becomes local processes started from
 * what the manifests say — the issuer from its Deployment's args and Secrets, each sidecar from
 * its container env and the files its volumes would hold (the downward-API config and CA, the
 * projected token). The named fake API server plays the cluster (EndpointSlices, Pods,
 * TokenReviews), and the real kubectl takes the injected stream (`apply --dry-run=client`).
 * What stands in for the cluster network, and why:
 *   - pods share one loopback here, so every listener binds 127.0.0.1:0 instead of its fixed
 *     port, and peers are addressed at the ports the OS picked;
 *   - cluster DNS does not exist, so the issuer serves a certificate for `localhost` signed by
 *     the same root (the rendered one names mesh-identity.mesh.svc), and proxies use the
 *     kubeconfig of the fake instead of the in-cluster service-account mount.
 * It proves the injected config meshes the apps: books' request to `authors` is balanced to
 * the authors pod over mTLS, each side verified as its ServiceAccount's SPIFFE ID.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { TrustAnchor } from "@mesh/tls-identity";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { missingPeer } from "../../../../scripts/peers.mjs";
import {
  endpointSlice,
  type FakeKubeApiserver,
  pod as fakePod,
  type KubeObject,
  startFakeKubeApiserver,
} from "../../../../test/fake-kube-apiserver.js";
import { injectManifests } from "../../src/kubernetes/inject/manifests.js";
import { renderInstall } from "../../src/kubernetes/install/render.js";
import { type ProxyProcess, startProxy, tempDir } from "../helpers.js";
import { admin, echoApp, metric, ready } from "../mesh/fixtures.js";
import { validateYaml } from "./schema.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON
type Json = Record<string, any>;

const APP_YAML = fileURLToPath(
  new URL("../../../../examples/kubernetes/app.yaml", import.meta.url),
);
const IDENTITY_CLI = fileURLToPath(new URL("../../../tls-identity/dist/cli.js", import.meta.url));
const TD = "mesh.example";

const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Starts `mesh-identity` with `args`; resolves with its URL once it says it listens. */
function startIssuer(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [IDENTITY_CLI, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanups.push(() => child.kill("SIGTERM"));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m) resolve({ url: m[1] as string, child });
    });
    child.on("exit", (code) => reject(new Error(`mesh-identity exited ${code}: ${stderr}`)));
  });
}

/** An absolute-form request, as an HTTP_PROXY-honouring client sends it. */
function viaHttpProxy(proxyUrl: string, url: string): Promise<{ status: number; body: string }> {
  const p = new URL(proxyUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: p.hostname,
        port: p.port,
        path: url,
        headers: { host: new URL(url).host },
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("install + inject + apply, run as local processes", () => {
  it("meshes the demo: books calls authors over mTLS with ServiceAccount identities", async () => {
    const dir = tempDir();
    // 1. install
    const install = renderInstall({
      proxyImage: "mesh-proxy:test",
      identityImage: "mesh-identity:test",
      trustDomain: TD,
      meshNamespaces: ["shop"],
    });
    const find = (kind: string, name: string) =>
      install.objects.find((o) => o.kind === kind && o.metadata.name === name) as Json;

    // 2. inject the demo (and it stays schema-valid)
    const injected = injectManifests(readFileSync(APP_YAML, "utf8"), {
      settings: install.settings,
    });
    expect(injected.reports.map((r) => `${r.object} ${r.result}`)).toEqual([
      "Deployment/books injected",
      "Deployment/authors injected",
    ]);
    const objects = await validateYaml(injected.output);
    const manifests = parseAllDocuments(injected.output).map((d) => d.toJS() as Json);
    const deployment = (name: string) =>
      manifests.find((o) => o.kind === "Deployment" && o.metadata.name === name) as Json;

    // 3. "apply": the cluster's side, in the fake API server.
    const api: FakeKubeApiserver = await startFakeKubeApiserver({
      tokens: ["issuer-sa-token", "books-sa-token", "authors-sa-token"],
    });
    cleanups.push(() => api.close());
    for (const o of objects.filter((x) => x.kind === "Service")) api.apply(o as KubeObject);
    // The real kubectl takes the injected stream as it would for `inject | kubectl apply -f -`.
    if (!missingPeer("kubectl")) {
      const kubeconfig = join(dir, "kubectl-config");
      api.tokens.add("kubectl-token");
      api.writeKubeconfig(kubeconfig, "kubectl-token");
      writeFileSync(join(dir, "injected.yaml"), injected.output);
      const { stdout } = await promisify(execFile)(
        "kubectl",
        [
          "--kubeconfig",
          kubeconfig,
          "apply",
          "--dry-run=client",
          "--validate=false",
          "-o",
          "name",
          "-f",
          join(dir, "injected.yaml"),
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
      expect(stdout.trim().split("\n")).toEqual([
        "namespace/shop",
        "serviceaccount/books",
        "serviceaccount/authors",
        "deployment.apps/books",
        "deployment.apps/authors",
        "service/books",
        "service/authors",
      ]);
    }
    for (const sa of ["books", "authors"])
      api.reviews.set(`${sa}-identity-token`, {
        username: `system:serviceaccount:shop:${sa}`,
        audiences: ["mesh-identity"],
      });

    // The issuer, from its Deployment: args, Secrets as files, API access for the fake.
    const caDir = join(dir, "issuer", "ca");
    const tlsDir = join(dir, "issuer", "tls");
    mkdirSync(caDir, { recursive: true });
    mkdirSync(tlsDir, { recursive: true });
    for (const [k, v] of Object.entries(
      find("Secret", "mesh-identity-issuer").stringData as Record<string, string>,
    ))
      writeFileSync(join(caDir, k), v);
    const anchor = TrustAnchor.fromPem(
      TD,
      install.trustAnchor.certificatePem,
      install.trustAnchor.keyPem,
    );
    const local = anchor.issueServerCertificate({ dnsNames: ["localhost"] });
    writeFileSync(join(tlsDir, "tls.crt"), local.certificatePem);
    writeFileSync(join(tlsDir, "tls.key"), local.keyPem);
    writeFileSync(join(dir, "issuer", "kube-ca.pem"), api.ca);
    writeFileSync(join(dir, "issuer", "kube-token"), "issuer-sa-token");
    const issuerArgs = (
      find("Deployment", "mesh-identity").spec.template.spec.containers[0].args as string[]
    ).map((a) =>
      a
        .replace("/var/run/mesh-identity/ca", caDir)
        .replace("/var/run/mesh-identity/tls", tlsDir)
        .replace(/^--port=\d+$/, "--port=0")
        .replace(/^--host=.*$/, "--host=localhost"),
    );
    const issuer = await startIssuer([
      ...issuerArgs,
      `--kube-api=${api.url}`,
      `--kube-ca=${join(dir, "issuer", "kube-ca.pem")}`,
      `--kube-token-file=${join(dir, "issuer", "kube-token")}`,
    ]);

    // Each pod: its sidecar's files and env, then the proxy process.
    const authorsApp = await echoApp();
    cleanups.push(() => authorsApp.close());
    const startPod = async (
      name: string,
      appAddress: string,
    ): Promise<{ proxy: ProxyProcess; appEnv: Record<string, string> }> => {
      const template = deployment(name).spec.template;
      const annotations = template.metadata.annotations as Json;
      const sidecar = template.spec.initContainers[0];
      const app = template.spec.containers[0];
      const mount = join(dir, name, "mesh");
      mkdirSync(mount, { recursive: true });
      // The projected volume: downward-API files from the annotations, the issuer token.
      const config = annotations["mesh.dev/proxy-config"]
        .replace(/(?:0\.0\.0\.0|127\.0\.0\.1):(4140|4143|4191)\b/g, "127.0.0.1:0")
        .replace(`127.0.0.1:${app.ports[0].containerPort}`, appAddress)
        // The name its certificate has (it prints the address it bound).
        .replace(
          install.settings.identity?.issuerUrl as string,
          `https://localhost:${new URL(issuer.url).port}`,
        )
        .replaceAll("/var/run/mesh/", `${mount}/`);
      writeFileSync(join(mount, "proxy.yaml"), config);
      writeFileSync(join(mount, "identity-ca.pem"), annotations["mesh.dev/identity-ca"]);
      writeFileSync(join(mount, "token"), `${name}-identity-token`);
      const kubeconfig = join(dir, name, "kubeconfig");
      api.writeKubeconfig(kubeconfig, `${name}-sa-token`, "shop");
      const env = Object.fromEntries(
        (sidecar.env as { name: string; value: string }[]).map((e) => [
          e.name,
          e.value.replace("/var/run/mesh/", `${mount}/`),
        ]),
      );
      const proxy = await startProxy(env.MESH_PROXY_CONFIG as string, {
        ...env,
        MESH_PROXY_KUBERNETES__KUBECONFIG: kubeconfig,
      });
      cleanups.push(() => proxy.stop());
      return {
        proxy,
        appEnv: Object.fromEntries(
          (app.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
        ),
      };
    };
    const authors = await startPod("authors", authorsApp.address);
    // kubelet and the EndpointSlice controller: the authors pod, ready, at its inbound port.
    const authorsInbound = Number((authors.proxy.addresses.inbound as string).split(":")[1]);
    api.apply(
      fakePod({
        name: "authors-0",
        namespace: "shop",
        labels: { "app.kubernetes.io/name": "authors" },
        serviceAccount: "authors",
        ip: "127.0.0.1",
      }),
    );
    api.apply(
      endpointSlice({
        namespace: "shop",
        service: "authors",
        ports: [{ name: "http", port: authorsInbound }],
        endpoints: [{ ip: "127.0.0.1", pod: "authors-0" }],
      }),
    );
    const books = await startPod("books", "127.0.0.1:1");
    await Promise.all([ready(authors.proxy), ready(books.proxy)]).catch((err) => {
      throw new Error(
        `${(err as Error).message}; authors: ${JSON.stringify(authors.proxy.logs.slice(-5))}; books: ${JSON.stringify(books.proxy.logs.slice(-5))}`,
      );
    });

    // books' app calls authors the way its HTTP client would, through HTTP_PROXY.
    expect(books.appEnv.HTTP_PROXY).toBe("http://127.0.0.1:4140");
    const outbound = `http://${books.proxy.addresses.outbound}`;
    const res = await viaHttpProxy(outbound, "http://authors.shop.svc.cluster.local/hello");
    expect(res.status, res.body).toBe(200);
    const echoed = JSON.parse(res.body);
    // The authors proxy verified books' certificate: its SPIFFE ID from its ServiceAccount.
    expect(echoed.headers["mesh-client-id"]).toBe(`spiffe://${TD}/ns/shop/sa/books`);
    expect(echoed.url).toBe("/hello");
    // And books' proxy sent it over TLS to the endpoint discovery found, expecting the
    // authors Pod's ServiceAccount identity (a peer without it fails the handshake).
    const metrics = (await admin(books.proxy, "/metrics")).body;
    expect(
      metric(
        metrics,
        "response_total",
        'direction="outbound"',
        'backend="authors"',
        'tls="true"',
        'status_code="200"',
      ),
    ).toBe(1);
    const endpoints = (await admin(books.proxy, "/endpoints")).body;
    expect(endpoints).toContain(`127.0.0.1:${authorsInbound}`);
    expect(endpoints).toContain(`spiffe://${TD}/ns/shop/sa/authors`);
    // The short name works too (same namespace).
    expect((await viaHttpProxy(outbound, "http://authors/x")).status).toBe(200);
    const cfg = parse(readFileSync(join(dir, "books", "mesh", "proxy.yaml"), "utf8"));
    expect(cfg.identity.id).toBe(`spiffe://${TD}/ns/shop/sa/books`);
  }, 60_000); // four Node processes and kubectl on a shared 2-core machine
});
