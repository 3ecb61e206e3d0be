import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultKubeApi, KubeApiClient } from "@mesh/balancer";
import { stringify } from "yaml";
import { Exit, integerFlag, parseSubcommand } from "../cli/subcommand.js";
import { createLogger, type LogLevel } from "../log.js";
import { injectManifests } from "./inject/manifests.js";
import type { InjectSettings } from "./inject/pod.js";
import { defaultSettings, loadSettings } from "./inject/settings.js";
import { INJECT_PATH, startInjector } from "./injector/webhook.js";

/** Where a subcommand writes and reads. */
export interface KubeCliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Standard input (the `-` file). */
  stdin?: () => Promise<string>;
}

export const INJECT_HELP = `Usage: mesh-proxy inject [files... | -] [options]

Adds the @mesh proxy to every workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job, CronJob, also inside a List) of Kubernetes YAML manifests, and writes them to stdout;
other objects, comments and unknown fields pass through unchanged. Reads stdin with "-" or
no file. Injecting twice changes nothing.

  kubectl get deploy books -o yaml | mesh-proxy inject - | kubectl apply -f -
  mesh-proxy inject app.yaml --settings mesh.yaml > app-meshed.yaml

Options:
  --uninject              remove the proxy instead
  --settings <file>       injection settings from "mesh-proxy install" (image, trust domain,
                          issuer URL and CA). Without it: no identity (plaintext between pods)
  --proxy-image <image>   the proxy image (overrides the settings)
  -n, --namespace <ns>    namespace of objects that name none (default "default")
  -h, --help              show this help

Annotations (on the pod template; mesh.dev/inject also on the workload):
  mesh.dev/inject: disabled                  leave this workload alone
  config.mesh.dev/outbound-services          services the app calls: "authors, reviews.shop:grpc"
                                             (name[.namespace][:port name or number], port
                                             default "http"): routed by authority (authors,
                                             authors.ns, authors.ns.svc, authors.ns.svc.<domain>)
                                             to the Service's ready pods (discovery.kubernetes)
  config.mesh.dev/opaque-ports               ports proxied as TCP (default 25,587,3306,4444,
                                             5432,6379,9300,11211)
  config.mesh.dev/skip-inbound-ports         container ports the proxy does not serve
  config.mesh.dev/skip-outbound-hosts        hosts added to NO_PROXY (reached directly)
  config.mesh.dev/proxy-cpu-request, -cpu-limit, -memory-request, -memory-limit
                                             the sidecar's resources (50m, none, 64Mi, 256Mi)
  config.mesh.dev/proxy-log-level            trace, debug, info (default), warn, error
  config.mesh.dev/proxy-image                the proxy image for this workload
  config.mesh.dev/proxy-config-overrides     YAML merged over the generated proxy config

The app reaches the outbound proxy through HTTP_PROXY=http://127.0.0.1:4140 (added to each
app container unless it sets its own); peers reach it through the proxy's mesh-inbound
port (4143): point your Service's targetPort at mesh-inbound.
`;

async function readInputs(files: string[], io: KubeCliIo): Promise<string> {
  const texts: string[] = [];
  for (const f of files.length === 0 ? ["-"] : files) {
    if (f === "-") {
      if (!io.stdin) throw new Error("no standard input");
      texts.push(await io.stdin());
    } else texts.push(await readFile(f, "utf8"));
  }
  return texts.map((t) => (t.endsWith("\n") ? t : `${t}\n`)).join("---\n");
}

const INJECT_COMMAND = {
  name: "inject",
  help: INJECT_HELP,
  positionals: true,
  flags: {
    uninject: { type: "boolean" },
    settings: { type: "string" },
    "proxy-image": { type: "string" },
    namespace: { type: "string", short: "n" },
  },
} as const;

/** `mesh-proxy inject`: exit 0, or 1 when an object could not be injected (it passes through). */
export async function injectMain(argv: string[], io: KubeCliIo, version: string): Promise<number> {
  const parsed = await parseSubcommand(INJECT_COMMAND, argv, io, (args) => args);
  if (parsed instanceof Exit) return parsed.code;
  const { values, positionals } = parsed;
  let settings: InjectSettings;
  let text: string;
  try {
    settings =
      values.settings !== undefined
        ? await loadSettings(values.settings, version)
        : defaultSettings(version);
    if (values["proxy-image"] !== undefined) settings.image = values["proxy-image"];
    text = await readInputs(positionals, io);
  } catch (err) {
    io.err(`mesh-proxy inject: ${(err as Error).message}\n`);
    return 1;
  }
  const { output, reports } = injectManifests(text, {
    settings,
    uninject: values.uninject === true,
    ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
  });
  io.out(output);
  let failed = 0;
  for (const r of reports) {
    if (r.result === "error") failed++;
    io.err(
      r.result === "error"
        ? `error: ${r.reason}\n`
        : `${r.object} ${r.result}${r.reason ? ` (${r.reason})` : ""}\n`,
    );
  }
  return failed > 0 ? 1 : 0;
}

export const INJECTOR_HELP = `Usage: mesh-proxy injector --tls-cert <file> --tls-key <file> [options]

The MutatingAdmissionWebhook that injects the proxy into pods as they are created (the same
change as "mesh-proxy inject"): HTTPS POST ${INJECT_PATH} with an admission.k8s.io/v1
AdmissionReview, answered with a JSON Patch. A pod is injected when its annotation
mesh.dev/inject (or else its namespace's) is "enabled"; never in kube-system, kube-public,
kube-node-lease or the injector's own namespace. "mesh-proxy install" deploys it.

Options:
  --settings <file>       injection settings (image, trust domain, issuer URL and CA)
  --tls-cert <file>       serving certificate chain (PEM) for the webhook Service's DNS name
  --tls-key <file>        its key
  --port <n>              port (default 8443)
  --host <addr>           address (default 0.0.0.0)
  --namespace <ns>        the control plane's namespace (default $POD_NAMESPACE, else mesh)
  --kubeconfig <file>     reach the API server with this kubeconfig (default: in-cluster)
  --log-level <level>     info (default), debug, warn, error
  -h, --help              show this help
`;

const INJECTOR_COMMAND = {
  name: "injector",
  help: INJECTOR_HELP,
  flags: {
    settings: { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    namespace: { type: "string" },
    kubeconfig: { type: "string" },
    "log-level": { type: "string" },
  },
} as const;

/** `mesh-proxy injector`: runs until SIGTERM/SIGINT, then exits 0. */
export async function injectorMain(
  argv: string[],
  io: KubeCliIo,
  version: string,
  ready?: (url: string) => void,
): Promise<number> {
  const parsed = await parseSubcommand(INJECTOR_COMMAND, argv, io, ({ values }) => {
    if (!values["tls-cert"] || !values["tls-key"])
      throw new TypeError(
        "--tls-cert and --tls-key are required (the API server calls webhooks over HTTPS)",
      );
    return {
      values,
      certFile: values["tls-cert"],
      keyFile: values["tls-key"],
      port: integerFlag("port", values.port, 8443, 0, 65_535),
    };
  });
  if (parsed instanceof Exit) return parsed.code;
  const { values, certFile, keyFile, port } = parsed;
  const level = (values["log-level"] ?? "info") as LogLevel;
  const logger = createLogger(level);
  let injector: Awaited<ReturnType<typeof startInjector>>;
  try {
    const settings = values.settings
      ? await loadSettings(values.settings, version)
      : defaultSettings(version);
    const kubeconfig = values.kubeconfig;
    const api = new KubeApiClient(() =>
      defaultKubeApi(kubeconfig !== undefined ? { kubeconfig } : {}),
    );
    injector = await startInjector({
      settings,
      ownNamespace: values.namespace ?? io.env.POD_NAMESPACE ?? "mesh",
      namespaceAnnotations: async (ns) =>
        (
          await api.request<{ metadata?: { annotations?: Record<string, string> } }>(
            "GET",
            `/api/v1/namespaces/${encodeURIComponent(ns)}`,
          )
        ).metadata?.annotations ?? {},
      cert: await readFile(certFile),
      key: await readFile(keyFile),
      port,
      host: values.host ?? "0.0.0.0",
      logger,
    });
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "failed to start");
    return 1;
  }
  logger.info({ port: injector.port }, "injector listening");
  ready?.(injector.url);
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      void injector.close().then(() => resolve(0));
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

export const INSTALL_HELP = `Usage: mesh-proxy install [options] | kubectl apply -f -

Renders the @mesh control plane for a cluster: the issuer (mesh-identity serve --kubernetes,
TokenReview authenticator) and the injector (this image's "injector"), each a Deployment,
Service, PodDisruptionBudget and ServiceAccount with least-privilege RBAC; the
MutatingWebhookConfiguration (failurePolicy Ignore); a new trust root (made here) with the
issuer's CA and serving certificates as Secrets; a NetworkPolicy for the issuer; read-only
discovery RBAC for the proxies of --mesh-namespaces. The root's private key is not printed
or stored anywhere unless --trust-anchor-out names a folder.

Options:
  --namespace <ns>            control plane namespace (default mesh)
  --trust-domain <td>         SPIFFE trust domain (default cluster.local)
  --cluster-domain <domain>   the cluster's DNS domain (default cluster.local)
  --proxy-image <image>       the proxy image (default mesh-proxy:<version>)
  --identity-image <image>    an image whose entrypoint is mesh-identity (default:
                              the proxy image, which ships mesh-identity too)
  --mesh-namespaces <a,b>     namespaces whose proxies may discover each other's services
  --replicas <n>              issuer and injector replicas (default 2)
  --trust-anchor <cert.pem>   sign under this root instead of a new one (with --trust-anchor-key)
  --trust-anchor-key <key.pem>
  --trust-anchor-out <dir>    write the new root's root.pem and root.key.pem (0600) there
  --settings-out <file>       write the injection settings for "mesh-proxy inject --settings"
  -h, --help                  show this help
`;

const INSTALL_COMMAND = {
  name: "install",
  help: INSTALL_HELP,
  flags: {
    namespace: { type: "string" },
    "trust-domain": { type: "string" },
    "cluster-domain": { type: "string" },
    "proxy-image": { type: "string" },
    "identity-image": { type: "string" },
    "mesh-namespaces": { type: "string" },
    replicas: { type: "string" },
    "trust-anchor": { type: "string" },
    "trust-anchor-key": { type: "string" },
    "trust-anchor-out": { type: "string" },
    "settings-out": { type: "string" },
  },
} as const;

/** `mesh-proxy install`: prints the manifests; exit 0, 1 on a bad input file, 2 on usage. */
export async function installMain(argv: string[], io: KubeCliIo, version: string): Promise<number> {
  const parsed = await parseSubcommand(INSTALL_COMMAND, argv, io, ({ values }) => {
    const replicas = integerFlag("replicas", values.replicas, 2, 1, 100);
    const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
    const namespaces = (values["mesh-namespaces"] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    for (const n of [values.namespace ?? "mesh", ...namespaces])
      if (!label.test(n) || n.length > 63)
        throw new TypeError(`expected a namespace name, got ${JSON.stringify(n)}`);
    const cert = values["trust-anchor"];
    const key = values["trust-anchor-key"];
    if ((cert === undefined) !== (key === undefined))
      throw new TypeError("--trust-anchor and --trust-anchor-key go together");
    const anchor = cert !== undefined && key !== undefined ? { cert, key } : undefined;
    return { values, replicas, namespaces, anchor };
  });
  if (parsed instanceof Exit) return parsed.code;
  const { values, replicas, namespaces, anchor } = parsed;
  try {
    const { renderInstall, installYaml, settingsFile } = await import("./install/render.js");
    const install = renderInstall({
      proxyImage: values["proxy-image"] ?? `mesh-proxy:${version}`,
      identityImage: values["identity-image"],
      replicas,
      meshNamespaces: namespaces,
      ...(values.namespace ? { namespace: values.namespace } : {}),
      ...(values["trust-domain"] ? { trustDomain: values["trust-domain"] } : {}),
      ...(values["cluster-domain"] ? { clusterDomain: values["cluster-domain"] } : {}),
      ...(anchor
        ? {
            trustAnchor: {
              certificatePem: await readFile(anchor.cert, "utf8"),
              keyPem: await readFile(anchor.key, "utf8"),
            },
          }
        : {}),
    });
    const out = values["trust-anchor-out"];
    if (out !== undefined && !anchor) {
      await mkdir(out, { recursive: true });
      await writeFile(join(out, "root.pem"), install.trustAnchor.certificatePem);
      await writeFile(join(out, "root.key.pem"), install.trustAnchor.keyPem, { mode: 0o600 });
      io.err(`wrote the trust root to ${out} (root.key.pem: keep it offline)\n`);
    }
    const settingsOut = values["settings-out"];
    if (settingsOut !== undefined)
      await writeFile(settingsOut, stringify(settingsFile(install.settings), { lineWidth: 0 }));
    io.out(installYaml(install));
    return 0;
  } catch (err) {
    io.err(`mesh-proxy install: ${(err as Error).message}\n`);
    return 1;
  }
}

export const CHECK_HELP = `Usage: mesh-proxy check --kubernetes [options]

Checks the mesh in a cluster, like "linkerd check": API server reachable, the control plane
namespace, RBAC of the issuer and injector accounts and of the proxies in namespaces
annotated mesh.dev/inject=enabled (SubjectAccessReview), issuer and
injector ready, the remaining life of every certificate (and that each chains to the root),
that the CA the injector hands pods is that root,
the webhook's caBundle and whether the webhook is reachable. Exit 1 if any check fails.

Options:
  --namespace <ns>        control plane namespace (default mesh)
  --kubeconfig <file>     kubeconfig (default: in-cluster in a pod, else $KUBECONFIG or ~/.kube/config)
  --context <name>        kubeconfig context
  --warn-days <n>         warn for certificates expiring within n days (default 30)
  -h, --help              show this help
`;

const CHECK_COMMAND = {
  name: "check",
  selector: "--kubernetes",
  help: CHECK_HELP,
  flags: {
    kubernetes: { type: "boolean" },
    namespace: { type: "string" },
    kubeconfig: { type: "string" },
    context: { type: "string" },
    "warn-days": { type: "string" },
  },
} as const;

/** `mesh-proxy check --kubernetes`. */
export async function checkMain(argv: string[], io: KubeCliIo): Promise<number> {
  const parsed = await parseSubcommand(CHECK_COMMAND, argv, io, ({ values }) => {
    const warnDays = Number(values["warn-days"] ?? 30);
    if (!Number.isFinite(warnDays) || warnDays < 0)
      throw new RangeError(
        `--warn-days: expected a number >= 0, got ${JSON.stringify(values["warn-days"])}`,
      );
    return { values, warnDays };
  });
  if (parsed instanceof Exit) return parsed.code;
  const { values, warnDays } = parsed;
  const { checkCluster, formatResults } = await import("./check/check.js");
  const kubeconfig = values.kubeconfig;
  const context = values.context;
  const api = new KubeApiClient(() =>
    defaultKubeApi({
      ...(kubeconfig !== undefined ? { kubeconfig } : {}),
      ...(context !== undefined ? { context } : {}),
    }),
  );
  const results = await checkCluster({
    api,
    warnBeforeMs: warnDays * 86_400_000,
    ...(values.namespace ? { namespace: values.namespace } : {}),
  });
  io.out(formatResults(results));
  return results.some((r) => r.status === "fail") ? 1 : 0;
}
