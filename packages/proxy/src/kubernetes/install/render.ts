import { BUNDLE_PATH, createTrustAnchor, TrustAnchor } from "@mesh/tls-identity";
import { stringify } from "yaml";
import { ANNOTATIONS } from "../inject/annotations.js";
import type { InjectSettings, KubeJson } from "../inject/pod.js";
import { SETTINGS_FILE } from "../inject/settings.js";
import { CONTROL_PLANE_LABEL, INJECT_PATH } from "../injector/webhook.js";

/** Names of what `install` creates, shared with `check`. */
export const INSTALL_NAMES = {
  identity: "mesh-identity",
  injector: "mesh-proxy-injector",
  issuerSecret: "mesh-identity-issuer",
  identityTls: "mesh-identity-tls",
  injectorTls: "mesh-proxy-injector-tls",
  trustRoots: "mesh-trust-roots",
  discoveryRole: "mesh-proxy-discovery",
  webhook: "mesh-proxy-injector",
} as const;

const IDENTITY_PORT = 8443;
const INJECTOR_PORT = 8443;
const HOUR = 3600_000;

/** Options of {@link renderInstall}. */
export interface InstallOptions {
  /** The control plane's namespace. Default `mesh`. */
  namespace?: string;
  trustDomain?: string;
  clusterDomain?: string;
  /** The proxy image (sidecars and the injector). */
  proxyImage: string;
  /**
   * An image whose entrypoint is `mesh-identity` (the issuer). Default: the proxy image,
   * which ships the issuer's CLI too (`/app/mesh-identity.mjs`), so one image runs the mesh.
   */
  identityImage?: string | undefined;
  /** An existing root to sign under (PEM); default a new one made here. */
  trustAnchor?: { certificatePem: string; keyPem: string };
  /** Root lifetime (a new root only). Default 10 years. */
  rootTtlMs?: number;
  /** Issuer (intermediate) and serving-certificate lifetime. Default 1 year. */
  issuerTtlMs?: number;
  /** Namespaces whose proxies may read EndpointSlices, Services and Pods of each other. */
  meshNamespaces?: string[];
  /** Replicas of the issuer and the injector. Default 2. */
  replicas?: number;
}

/** What {@link renderInstall} returns. */
export interface Install {
  objects: KubeJson[];
  /** The injection settings (also in the injector's ConfigMap), for `mesh-proxy inject --settings`. */
  settings: InjectSettings;
  /** The root made (or given); its key is only here, never in `objects`. */
  trustAnchor: { certificatePem: string; keyPem: string };
}

const pem64 = (pem: string) => Buffer.from(pem).toString("base64");

/**
 * Renders the control plane: the issuer (TokenReview authenticator) and the injector, each a
 * Deployment + Service + PodDisruptionBudget with its own ServiceAccount and least-privilege
 * RBAC; the MutatingWebhookConfiguration (failurePolicy Ignore); the issuer's CA and serving
 * certificates as Secrets (made here, with `@mesh/tls-identity`); the public trust roots; a
 * NetworkPolicy admitting only the issuer's port; and read-only discovery RBAC for the
 * proxies of `meshNamespaces`. The root's key is returned, not rendered.
 */
export function renderInstall(o: InstallOptions): Install {
  const ns = o.namespace ?? "mesh";
  const td = o.trustDomain ?? "cluster.local";
  const domain = o.clusterDomain ?? "cluster.local";
  const replicas = o.replicas ?? 2;
  const issuerTtl = o.issuerTtlMs ?? 8760 * HOUR;
  const anchor = o.trustAnchor
    ? TrustAnchor.fromPem(td, o.trustAnchor.certificatePem, o.trustAnchor.keyPem)
    : createTrustAnchor({ trustDomain: td, ttlMs: o.rootTtlMs ?? 10 * 8760 * HOUR });
  const root = anchor.toPem();
  const ca = anchor.createAuthority({ ttlMs: issuerTtl }).toPem();
  const svc = (name: string) => [`${name}.${ns}.svc`, `${name}.${ns}.svc.${domain}`];
  const identityTls = anchor.issueServerCertificate({
    dnsNames: svc(INSTALL_NAMES.identity),
    ttlMs: issuerTtl,
  });
  const injectorTls = anchor.issueServerCertificate({
    dnsNames: svc(INSTALL_NAMES.injector),
    ttlMs: issuerTtl,
  });
  const settings: InjectSettings = {
    image: o.proxyImage,
    trustDomain: td,
    clusterDomain: domain,
    identity: {
      issuerUrl: `https://${INSTALL_NAMES.identity}.${ns}.svc.${domain}:${IDENTITY_PORT}`,
      audience: "mesh-identity",
      ca: root.certificatePem,
    },
  };

  const labels = (name: string, component: string) => ({
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/part-of": "mesh",
    [CONTROL_PLANE_LABEL]: component,
  });
  const meta = (name: string, component: string, namespaced = true) => ({
    name,
    ...(namespaced ? { namespace: ns } : {}),
    labels: labels(name, component),
  });
  const securityContext = {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
  const httpsProbe = (path: string, port: number) => ({
    httpGet: { path, port, scheme: "HTTPS" },
    periodSeconds: 5,
  });
  const deployment = (
    name: string,
    component: string,
    container: KubeJson,
    volumes: KubeJson[],
  ): KubeJson => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(name, component),
    spec: {
      replicas,
      selector: { matchLabels: { "app.kubernetes.io/name": name } },
      template: {
        metadata: {
          labels: labels(name, component),
          // The webhook's objectSelector skips these too; this also stops `inject`.
          annotations: { [ANNOTATIONS.inject]: "disabled" },
        },
        spec: {
          serviceAccountName: name,
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          // Spread replicas over nodes so a drain keeps one serving (with the PDB).
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: "kubernetes.io/hostname",
              whenUnsatisfiable: "ScheduleAnyway",
              labelSelector: { matchLabels: { "app.kubernetes.io/name": name } },
            },
          ],
          containers: [
            {
              ...container,
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
              securityContext,
            },
          ],
          volumes,
        },
      },
    },
  });
  const service = (
    name: string,
    component: string,
    port: number,
    targetPort: number,
  ): KubeJson => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(name, component),
    spec: {
      selector: { "app.kubernetes.io/name": name },
      ports: [{ name: "https", port, targetPort, protocol: "TCP" }],
    },
  });
  const pdb = (name: string, component: string): KubeJson => ({
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: meta(name, component),
    spec: { minAvailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": name } } },
  });
  const account = (name: string, component: string): KubeJson => ({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: meta(name, component),
  });
  const clusterRole = (name: string, component: string, rules: KubeJson[]): KubeJson[] => [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta(name, component, false),
      rules,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: meta(name, component, false),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns }],
    },
  ];
  const tlsSecret = (
    name: string,
    component: string,
    cert: { certificatePem: string; keyPem: string },
  ) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: meta(name, component),
    type: "kubernetes.io/tls",
    stringData: { "tls.crt": cert.certificatePem, "tls.key": cert.keyPem },
  });

  const meshNamespaces = o.meshNamespaces ?? [];
  const objects: KubeJson[] = [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: ns,
        labels: {
          "app.kubernetes.io/part-of": "mesh",
          // The control plane runs under the restricted Pod Security Standard.
          "pod-security.kubernetes.io/enforce": "restricted",
        },
      },
    },
    // --- identity: the issuer, verifying ServiceAccount tokens with TokenReviews ---
    account(INSTALL_NAMES.identity, "identity"),
    // Only what a TokenReview authenticator needs (narrower than system:auth-delegator).
    ...clusterRole(INSTALL_NAMES.identity, "identity", [
      { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
    ]),
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta(INSTALL_NAMES.issuerSecret, "identity"),
      type: "Opaque",
      // The layout of `mesh-identity ca create`, minus the root's key (kept off the cluster).
      stringData: {
        "ca.json": `${JSON.stringify({ trustDomain: td })}\n`,
        "ca.pem": ca.chainPem,
        "ca.key.pem": ca.keyPem,
        "bundle.pem": ca.bundlePem,
      },
    },
    tlsSecret(INSTALL_NAMES.identityTls, "identity", identityTls),
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta(INSTALL_NAMES.trustRoots, "identity"),
      data: { "ca-bundle.crt": root.certificatePem },
    },
    deployment(
      INSTALL_NAMES.identity,
      "identity",
      {
        name: "issuer",
        ...(o.identityImage === undefined
          ? { image: o.proxyImage, command: ["/nodejs/bin/node", "/app/mesh-identity.mjs"] }
          : { image: o.identityImage }),
        args: [
          "serve",
          "--ca=/var/run/mesh-identity/ca",
          "--kubernetes",
          "--audience=mesh-identity",
          "--host=0.0.0.0",
          `--port=${IDENTITY_PORT}`,
          "--tls-cert=/var/run/mesh-identity/tls/tls.crt",
          "--tls-key=/var/run/mesh-identity/tls/tls.key",
        ],
        ports: [{ name: "https", containerPort: IDENTITY_PORT }],
        readinessProbe: httpsProbe(BUNDLE_PATH, IDENTITY_PORT),
        livenessProbe: {
          ...httpsProbe(BUNDLE_PATH, IDENTITY_PORT),
          periodSeconds: 10,
          failureThreshold: 3,
        },
        volumeMounts: [
          { name: "ca", mountPath: "/var/run/mesh-identity/ca", readOnly: true },
          { name: "tls", mountPath: "/var/run/mesh-identity/tls", readOnly: true },
        ],
      },
      [
        { name: "ca", secret: { secretName: INSTALL_NAMES.issuerSecret } },
        { name: "tls", secret: { secretName: INSTALL_NAMES.identityTls } },
      ],
    ),
    service(INSTALL_NAMES.identity, "identity", IDENTITY_PORT, IDENTITY_PORT),
    pdb(INSTALL_NAMES.identity, "identity"),
    {
      // Every meshed pod asks the issuer for certificates, so ingress is open on its port and
      // closed on every other.
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta(INSTALL_NAMES.identity, "identity"),
      spec: {
        podSelector: { matchLabels: { "app.kubernetes.io/name": INSTALL_NAMES.identity } },
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: [{ namespaceSelector: {} }],
            ports: [{ protocol: "TCP", port: IDENTITY_PORT }],
          },
        ],
      },
    },
    // --- the injector: the admission webhook ---
    account(INSTALL_NAMES.injector, "injector"),
    // It reads a pod's namespace for the mesh.dev/inject annotation; nothing else.
    ...clusterRole(INSTALL_NAMES.injector, "injector", [
      { apiGroups: [""], resources: ["namespaces"], verbs: ["get"] },
    ]),
    tlsSecret(INSTALL_NAMES.injectorTls, "injector", injectorTls),
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta(INSTALL_NAMES.injector, "injector"),
      data: { [SETTINGS_FILE]: stringify(settingsFile(settings), { lineWidth: 0 }) },
    },
    deployment(
      INSTALL_NAMES.injector,
      "injector",
      {
        name: "injector",
        image: o.proxyImage,
        args: [
          "injector",
          `--settings=/etc/mesh-injector/${SETTINGS_FILE}`,
          "--tls-cert=/var/run/mesh-injector/tls/tls.crt",
          "--tls-key=/var/run/mesh-injector/tls/tls.key",
          `--port=${INJECTOR_PORT}`,
        ],
        env: [
          { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        ],
        ports: [{ name: "https", containerPort: INJECTOR_PORT }],
        readinessProbe: httpsProbe("/ready", INJECTOR_PORT),
        livenessProbe: {
          ...httpsProbe("/live", INJECTOR_PORT),
          periodSeconds: 10,
          failureThreshold: 3,
        },
        volumeMounts: [
          { name: "settings", mountPath: "/etc/mesh-injector", readOnly: true },
          { name: "tls", mountPath: "/var/run/mesh-injector/tls", readOnly: true },
        ],
      },
      [
        { name: "settings", configMap: { name: INSTALL_NAMES.injector } },
        { name: "tls", secret: { secretName: INSTALL_NAMES.injectorTls } },
      ],
    ),
    service(INSTALL_NAMES.injector, "injector", 443, INJECTOR_PORT),
    pdb(INSTALL_NAMES.injector, "injector"),
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: meta(INSTALL_NAMES.webhook, "injector", false),
      webhooks: [
        {
          name: "inject.mesh.dev",
          admissionReviewVersions: ["v1"],
          sideEffects: "None",
          // A down injector must not stop pods from starting: they start unmeshed.
          failurePolicy: "Ignore",
          timeoutSeconds: 10,
          reinvocationPolicy: "IfNeeded",
          clientConfig: {
            service: { name: INSTALL_NAMES.injector, namespace: ns, path: INJECT_PATH, port: 443 },
            caBundle: pem64(root.certificatePem),
          },
          rules: [
            {
              operations: ["CREATE"],
              apiGroups: [""],
              apiVersions: ["v1"],
              resources: ["pods"],
              scope: "Namespaced",
            },
          ],
          namespaceSelector: {
            matchExpressions: [
              {
                key: "kubernetes.io/metadata.name",
                operator: "NotIn",
                values: ["kube-system", "kube-public", "kube-node-lease", ns],
              },
            ],
          },
          objectSelector: {
            matchExpressions: [{ key: CONTROL_PLANE_LABEL, operator: "DoesNotExist" }],
          },
        },
      ],
    },
    // --- what injected proxies read for discovery.kubernetes (bound per meshed namespace) ---
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: meta(INSTALL_NAMES.discoveryRole, "proxy", false),
      rules: [
        {
          apiGroups: ["discovery.k8s.io"],
          resources: ["endpointslices"],
          verbs: ["get", "list", "watch"],
        },
        { apiGroups: [""], resources: ["services", "pods"], verbs: ["get", "list", "watch"] },
      ],
    },
    ...meshNamespaces.map((n) => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: {
        name: INSTALL_NAMES.discoveryRole,
        namespace: n,
        labels: labels(INSTALL_NAMES.discoveryRole, "proxy"),
      },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: INSTALL_NAMES.discoveryRole,
      },
      // The service accounts of every meshed namespace may discover this one's services.
      subjects: meshNamespaces.map((m) => ({
        apiGroup: "rbac.authorization.k8s.io",
        kind: "Group",
        name: `system:serviceaccounts:${m}`,
      })),
    })),
  ];
  return { objects, settings, trustAnchor: root };
}

/** The settings as `mesh-proxy inject --settings` reads them. */
export function settingsFile(s: InjectSettings): KubeJson {
  return {
    image: s.image,
    trustDomain: s.trustDomain,
    clusterDomain: s.clusterDomain,
    ...(s.identity ? { identity: s.identity } : {}),
  };
}

/** The objects as one YAML stream, with a header saying what it is. */
export function installYaml(install: Install): string {
  return `# @mesh control plane, rendered by mesh-proxy install. Apply with kubectl apply -f -.\n${install.objects
    .map((o) => stringify(o, { lineWidth: 0 }))
    .join("---\n")}`;
}
