import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { defaultKubeApi, KubeApiClient } from "@mesh/balancer";
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

/** `mesh-proxy inject`: exit 0, or 1 when an object could not be injected (it passes through). */
export async function injectMain(argv: string[], io: KubeCliIo, version: string): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        uninject: { type: "boolean" },
        settings: { type: "string" },
        "proxy-image": { type: "string" },
        namespace: { type: "string", short: "n" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    io.err(`mesh-proxy inject: ${(err as Error).message}\n\n${INJECT_HELP}`);
    return 2;
  }
  if (values.help) {
    io.out(INJECT_HELP);
    return 0;
  }
  let settings: InjectSettings;
  let text: string;
  try {
    settings =
      typeof values.settings === "string"
        ? await loadSettings(values.settings, version)
        : defaultSettings(version);
    if (typeof values["proxy-image"] === "string") settings.image = values["proxy-image"];
    text = await readInputs(positionals, io);
  } catch (err) {
    io.err(`mesh-proxy inject: ${(err as Error).message}\n`);
    return 1;
  }
  const { output, reports } = injectManifests(text, {
    settings,
    uninject: values.uninject === true,
    ...(typeof values.namespace === "string" ? { namespace: values.namespace } : {}),
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

/** `mesh-proxy injector`: runs until SIGTERM/SIGINT, then exits 0. */
export async function injectorMain(
  argv: string[],
  io: KubeCliIo,
  version: string,
  ready?: (url: string) => void,
): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        settings: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        namespace: { type: "string" },
        kubeconfig: { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    io.err(`mesh-proxy injector: ${(err as Error).message}\n\n${INJECTOR_HELP}`);
    return 2;
  }
  if (values.help) {
    io.out(INJECTOR_HELP);
    return 0;
  }
  const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const certFile = str("tls-cert");
  const keyFile = str("tls-key");
  if (!certFile || !keyFile) {
    io.err(
      "mesh-proxy injector: --tls-cert and --tls-key are required (the API server calls webhooks over HTTPS)\n",
    );
    return 2;
  }
  const port = Number(str("port") ?? 8443);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    io.err(
      `mesh-proxy injector: --port: expected an integer in 0..65535, got ${JSON.stringify(str("port"))}\n`,
    );
    return 2;
  }
  const level = (str("log-level") ?? "info") as LogLevel;
  const logger = createLogger(level);
  let injector: Awaited<ReturnType<typeof startInjector>>;
  try {
    const settings = str("settings")
      ? await loadSettings(str("settings") as string, version)
      : defaultSettings(version);
    const kubeconfig = str("kubeconfig");
    const api = new KubeApiClient(() =>
      defaultKubeApi(kubeconfig !== undefined ? { kubeconfig } : {}),
    );
    injector = await startInjector({
      settings,
      ownNamespace: str("namespace") ?? io.env.POD_NAMESPACE ?? "mesh",
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
      host: str("host") ?? "0.0.0.0",
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
