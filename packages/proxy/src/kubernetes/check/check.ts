import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import type { KubeApiClient } from "@mesh/balancer";
import { ANNOTATIONS } from "../inject/annotations.js";
import type { KubeJson } from "../inject/pod.js";
import { parseSettings, SETTINGS_FILE } from "../inject/settings.js";
import { INSTALL_NAMES } from "../install/render.js";

/** One line of `mesh-proxy check --kubernetes`. */
export interface CheckResult {
  /** What was checked, e.g. `issuer ready`. */
  name: string;
  status: "ok" | "warn" | "fail";
  /** What was found; for warn/fail, what is wrong and what to do. */
  detail: string;
}

/** Options of {@link checkCluster}. */
export interface CheckOptions {
  api: KubeApiClient;
  /** The control plane's namespace. Default `mesh`. */
  namespace?: string;
  /** Certificates expiring sooner than this warn. Default 30 days. */
  warnBeforeMs?: number;
  /** The current time (ms since epoch). */
  now?: number;
}

const DAY = 86_400_000;

function age(ms: number): string {
  if (ms >= 2 * DAY) return `${Math.floor(ms / DAY)} days`;
  return `${Math.max(0, Math.floor(ms / 3_600_000))} hours`;
}

/**
 * Checks a cluster the way an operator would after `mesh-proxy install`: the API server
 * answers; the control plane's namespace exists; the issuer's and injector's service accounts
 * hold exactly the permissions they need (SubjectAccessReview); both Deployments have ready
 * replicas; every certificate (issuer CA, serving certificates, root) chains to the root and
 * has time left; the webhook configuration's caBundle verifies the injector's certificate for
 * its Service's name and the injector Service has ready endpoints (or, for a `url` webhook,
 * answers an AdmissionReview). Each check after a failed prerequisite still runs where it can.
 */
export async function checkCluster(o: CheckOptions): Promise<CheckResult[]> {
  const ns = o.namespace ?? "mesh";
  const now = o.now ?? Date.now();
  const warnBefore = o.warnBeforeMs ?? 30 * DAY;
  const results: CheckResult[] = [];
  const add = (name: string, status: CheckResult["status"], detail: string) =>
    results.push({ name, status, detail });
  const get = async (path: string): Promise<KubeJson | undefined> => {
    try {
      return await o.api.request<KubeJson>("GET", path);
    } catch (err) {
      if ((err as { status?: number }).status === 404) return undefined;
      throw err;
    }
  };

  try {
    await o.api.request("GET", "/api");
    add("Kubernetes API reachable", "ok", "the API server answered");
  } catch (err) {
    add("Kubernetes API reachable", "fail", (err as Error).message);
    return results;
  }
  const namespace = await get(`/api/v1/namespaces/${ns}`);
  if (!namespace) {
    add(`namespace ${ns}`, "fail", `not found: run mesh-proxy install | kubectl apply -f -`);
    return results;
  }
  add(`namespace ${ns}`, "ok", "exists");

  // RBAC: what each control-plane account must be allowed (and the check's own right to ask).
  const needs: [string, { verb: string; group: string; resource: string }][] = [
    [
      INSTALL_NAMES.identity,
      { verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" },
    ],
    [INSTALL_NAMES.injector, { verb: "get", group: "", resource: "namespaces" }],
  ];
  /** Asks whether a service account may do something; one result line either way. */
  const rbac = async (
    name: string,
    namespace: string,
    account: string,
    attrs: Record<string, string>,
    fix: string,
  ) => {
    try {
      const review = await o.api.request<KubeJson>(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: `system:serviceaccount:${namespace}:${account}`,
            groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`],
            resourceAttributes: attrs,
          },
        },
      );
      if (review.status?.allowed === true) add(name, "ok", "allowed");
      else
        add(
          name,
          "fail",
          `denied${review.status?.reason ? ` (${review.status.reason})` : ""}: ${fix}`,
        );
    } catch (err) {
      add(name, "warn", `could not ask (SubjectAccessReview): ${(err as Error).message}`);
    }
  };
  for (const [account, attrs] of needs) {
    const what = `${attrs.verb} ${attrs.group ? `${attrs.group}/` : ""}${attrs.resource}`;
    await rbac(
      `RBAC: ${account} may ${what}`,
      ns,
      account,
      attrs,
      `the ClusterRoleBinding ${account} is missing or changed; re-apply mesh-proxy install`,
    );
  }
  // Meshed namespaces: their proxies watch EndpointSlices with the pods' own accounts.
  const namespaces = await o.api
    .request<KubeJson>("GET", "/api/v1/namespaces")
    .then((l) => (l.items ?? []) as KubeJson[])
    .catch(() => [] as KubeJson[]);
  for (const n of namespaces) {
    if (n.metadata?.annotations?.[ANNOTATIONS.inject] !== "enabled") continue;
    const meshed = n.metadata.name as string;
    await rbac(
      `RBAC: proxies in namespace ${meshed} may watch endpointslices`,
      meshed,
      "default",
      { verb: "watch", group: "discovery.k8s.io", resource: "endpointslices", namespace: meshed },
      "injected proxies there cannot discover endpoints; add it to mesh-proxy install --mesh-namespaces and re-apply",
    );
  }

  for (const [name, what] of [
    [INSTALL_NAMES.identity, "issuer"],
    [INSTALL_NAMES.injector, "injector"],
  ] as const) {
    const d = await get(`/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
    const check = `${what} ready`;
    if (!d) {
      add(check, "fail", `deployment ${ns}/${name} not found`);
      continue;
    }
    const want = d.spec?.replicas ?? 1;
    const ready = d.status?.readyReplicas ?? 0;
    if (ready === 0)
      add(
        check,
        "fail",
        `deployment ${ns}/${name} has 0/${want} ready replicas: kubectl -n ${ns} describe deploy ${name}`,
      );
    else if (ready < want)
      add(check, "warn", `deployment ${ns}/${name} has ${ready}/${want} ready replicas`);
    else add(check, "ok", `${ready}/${want} replicas ready`);
  }

  // Certificates: each must chain to the root and have time left.
  const secretPem = async (secret: string, key: string): Promise<string | undefined> => {
    const s = await get(`/api/v1/namespaces/${ns}/secrets/${secret}`);
    const b64 = s?.data?.[key];
    return typeof b64 === "string" ? Buffer.from(b64, "base64").toString("utf8") : undefined;
  };
  const first = (pem: string) => new X509Certificate(pem);
  const rootPem = await secretPem(INSTALL_NAMES.issuerSecret, "bundle.pem");
  let root: X509Certificate | undefined;
  if (rootPem === undefined)
    add("trust root", "fail", `secret ${ns}/${INSTALL_NAMES.issuerSecret} (bundle.pem) not found`);
  else {
    root = first(rootPem);
    lifetime("trust root", root);
  }
  function lifetime(name: string, cert: X509Certificate, dnsName?: string): void {
    const left = Date.parse(cert.validTo) - now;
    const until = new Date(Date.parse(cert.validTo)).toISOString();
    if (root && cert !== root && !cert.verify(root.publicKey)) {
      add(
        name,
        "fail",
        `not signed by the trust root in ${INSTALL_NAMES.issuerSecret}/bundle.pem: re-run mesh-proxy install with the current root`,
      );
      return;
    }
    if (dnsName !== undefined && cert.checkHost(dnsName) === undefined) {
      add(name, "fail", `not valid for ${dnsName} (the name clients use)`);
      return;
    }
    if (left <= 0) add(name, "fail", `expired at ${until}`);
    else if (left < warnBefore) add(name, "warn", `expires in ${age(left)} (${until}): rotate it`);
    else add(name, "ok", `valid for ${age(left)} (until ${until})`);
  }
  const certs: [string, string, string, string | undefined][] = [
    ["issuer CA certificate", INSTALL_NAMES.issuerSecret, "ca.pem", undefined],
    [
      "issuer serving certificate",
      INSTALL_NAMES.identityTls,
      "tls.crt",
      `${INSTALL_NAMES.identity}.${ns}.svc`,
    ],
    [
      "injector serving certificate",
      INSTALL_NAMES.injectorTls,
      "tls.crt",
      `${INSTALL_NAMES.injector}.${ns}.svc`,
    ],
  ];
  let injectorCert: X509Certificate | undefined;
  for (const [name, secret, key, dns] of certs) {
    const pem = await secretPem(secret, key);
    if (pem === undefined) {
      add(name, "fail", `secret ${ns}/${secret} (${key}) not found`);
      continue;
    }
    const cert = first(pem);
    if (secret === INSTALL_NAMES.injectorTls) injectorCert = cert;
    lifetime(name, cert, dns);
  }

  // What injected pods are handed to verify the issuer must be the root it chains to: a
  // second `install` with a new root (no --trust-anchor), applied in part, breaks this.
  const injectorConfig = await get(`/api/v1/namespaces/${ns}/configmaps/${INSTALL_NAMES.injector}`);
  const settingsText = injectorConfig?.data?.[SETTINGS_FILE];
  if (typeof settingsText !== "string")
    add(
      "injector settings",
      "fail",
      `configmap ${ns}/${INSTALL_NAMES.injector} (${SETTINGS_FILE}) not found`,
    );
  else {
    let ca: X509Certificate | undefined;
    try {
      ca = first(
        parseSettings(settingsText, `configmap ${INSTALL_NAMES.injector}`, "").identity?.ca ?? "",
      );
    } catch {
      ca = undefined;
    }
    if (!ca)
      add(
        "injector settings",
        "warn",
        "no identity CA: injected proxies speak plaintext between pods",
      );
    else if (root && !root.publicKey.equals(ca.publicKey))
      add(
        "injector settings",
        "fail",
        `the CA given to injected pods (identity.ca) is not the trust root in ${INSTALL_NAMES.issuerSecret}: new pods cannot verify the issuer; apply all of one mesh-proxy install output`,
      );
    else add("injector settings", "ok", "injected pods verify the issuer with the trust root");
  }

  // The webhook: configured, trusting the injector's certificate, and reachable.
  const hook = await get(
    `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${INSTALL_NAMES.webhook}`,
  );
  const w = hook?.webhooks?.[0];
  if (!w) {
    add(
      "webhook configured",
      "fail",
      `mutatingwebhookconfiguration ${INSTALL_NAMES.webhook} not found: pods will not be injected`,
    );
    return results;
  }
  const caBundle = w.clientConfig?.caBundle
    ? Buffer.from(w.clientConfig.caBundle, "base64").toString("utf8")
    : "";
  if (w.failurePolicy !== "Ignore")
    add(
      "webhook configured",
      "warn",
      `failurePolicy is ${w.failurePolicy ?? "Fail"}: a down injector blocks every pod creation it matches`,
    );
  else add("webhook configured", "ok", "failurePolicy Ignore");
  let bundleCert: X509Certificate | undefined;
  try {
    bundleCert = caBundle ? first(caBundle) : undefined;
  } catch {
    bundleCert = undefined;
  }
  if (!bundleCert)
    add(
      "webhook caBundle",
      "fail",
      "missing or not PEM: the API server cannot verify the injector",
    );
  else if (injectorCert && !injectorCert.verify(bundleCert.publicKey))
    add(
      "webhook caBundle",
      "fail",
      `does not verify the certificate in ${INSTALL_NAMES.injectorTls}: the API server will refuse the injector (pods start unmeshed)`,
    );
  else add("webhook caBundle", "ok", "verifies the injector's certificate");

  const url: string | undefined = w.clientConfig?.url;
  if (url !== undefined) {
    try {
      await probeWebhook(url, caBundle);
      add("webhook reachable", "ok", `${url} answered an AdmissionReview`);
    } catch (err) {
      add("webhook reachable", "fail", `${url}: ${(err as Error).message}`);
    }
  } else {
    const svc = w.clientConfig?.service ?? {};
    const slices = await get(
      `/apis/discovery.k8s.io/v1/namespaces/${svc.namespace ?? ns}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${svc.name}`)}`,
    );
    const ready = (slices?.items ?? []).flatMap((s: KubeJson) =>
      (s.endpoints ?? []).filter((e: KubeJson) => e.conditions?.ready !== false),
    );
    if (ready.length === 0)
      add(
        "webhook reachable",
        "fail",
        `service ${svc.namespace ?? ns}/${svc.name} has no ready endpoints: pods start unmeshed`,
      );
    else
      add(
        "webhook reachable",
        "ok",
        `service ${svc.namespace ?? ns}/${svc.name} has ${ready.length} ready endpoint(s)`,
      );
  }
  return results;
}

/** POSTs a harmless AdmissionReview (a ConfigMap) and expects it allowed. */
function probeWebhook(url: string, ca: string): Promise<void> {
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "mesh-proxy-check",
      kind: { group: "", version: "v1", kind: "ConfigMap" },
      operation: "CREATE",
      object: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "probe" } },
      dryRun: true,
    },
  });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", ca, timeout: 5_000, headers: { "content-type": "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            const r = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            if (res.statusCode === 200 && r.response?.allowed === true) resolve();
            else
              reject(
                new Error(
                  `HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString("utf8").slice(0, 200)}`,
                ),
              );
          } catch {
            reject(new Error(`HTTP ${res.statusCode}: not an AdmissionReview`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 5s")));
    req.on("error", reject);
    req.end(body);
  });
}

/** `linkerd check`-style lines: √ ok, ‼ warn, × fail. */
export function formatResults(results: readonly CheckResult[]): string {
  const mark = { ok: "√", warn: "‼", fail: "×" } as const;
  const lines = results.map((r) => `${mark[r.status]} ${r.name}: ${r.detail}`);
  const failed = results.filter((r) => r.status === "fail").length;
  const warned = results.filter((r) => r.status === "warn").length;
  lines.push(
    failed > 0
      ? `\nStatus check results are × (${failed} failed${warned ? `, ${warned} warning${warned === 1 ? "" : "s"}` : ""})`
      : `\nStatus check results are √${warned ? ` (${warned} warning${warned === 1 ? "" : "s"})` : ""}`,
  );
  return `${lines.join("\n")}\n`;
}
