import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { injectManifests } from "./inject/manifests.js";
import type { InjectSettings } from "./inject/pod.js";
import { defaultSettings, loadSettings } from "./inject/settings.js";

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
