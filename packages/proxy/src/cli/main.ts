import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { suggest } from "@mesh/core";
import { ENV_CONFIG_FILE } from "../config/env.js";
import { ConfigError, type ConfigProblem, formatProblem } from "../config/errors.js";
import { checkConfigFiles } from "../config/files.js";
import { configJsonSchema } from "../config/json-schema.js";
import { configLoadWarnings, loadConfigFile } from "../config/load.js";
import { retryWarnings } from "../config/retry-conditions.js";
import { createLogger } from "../log.js";
import { MeshProxy } from "../proxy.js";
import { Exit, parseSubcommand } from "./subcommand.js";

const HELP = `mesh-proxy: the @mesh sidecar proxy

Usage:
  mesh-proxy --config <file>          run the proxy
  mesh-proxy check --config <file>    validate a config and the files it names (certificates, key,
                                      bundles, token, discovery files); prints every problem
                                      (exit 1 if any)
  mesh-proxy stat --admin <list>      golden signals of running proxies (see: mesh-proxy stat --help)
  mesh-proxy tap --admin <list>       live requests through running proxies (see: mesh-proxy tap --help)
  mesh-proxy dashboard --admin <list> a live web view of running proxies (see: mesh-proxy dashboard --help)
  mesh-proxy schema                   print the config's JSON Schema
  mesh-proxy inject [files|-]         add the proxy to Kubernetes workloads (see: inject --help)
  mesh-proxy injector                 the admission webhook that injects at pod creation
  mesh-proxy install                  render the control plane's manifests (issuer, injector, RBAC)
  mesh-proxy check --kubernetes       check the mesh in a cluster

Options:
  -c, --config <file>   YAML or JSON config (default: $${ENV_CONFIG_FILE})
  -h, --help            show this help
  -v, --version         print the version

Environment:
  MESH_PROXY_<PATH>     override a config field: segments separated by "__", words by "_"
                        (MESH_PROXY_LOG__LEVEL=debug, MESH_PROXY_INBOUND__APP=127.0.0.1:8080)

Signals: SIGTERM/SIGINT shut down gracefully, SIGHUP reloads the config file.
Admin (default 127.0.0.1:4191): /live /ready /metrics /config /endpoints /tap, POST /shutdown.
`;

/** `mesh-proxy` itself: `run` (the default), `check --config` and `schema`. */
const MAIN_COMMAND = {
  name: "",
  help: HELP,
  positionals: true,
  flags: {
    config: { type: "string", short: "c" },
    version: { type: "boolean", short: "v" },
  },
} as const;

/** Every command, for "did you mean". */
const COMMANDS = [
  "run",
  "check",
  "schema",
  "stat",
  "tap",
  "dashboard",
  "inject",
  "injector",
  "install",
];

/** The package version. */
export function version(): string {
  const require = createRequire(import.meta.url);
  try {
    return (require("../package.json") as { version: string }).version;
  } catch {
    // Run from source (tests): src/cli/ is one folder deeper than dist/.
    return (require("../../package.json") as { version: string }).version;
  }
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Standard input, for `inject -`. Default: process.stdin. */
  stdin?: () => Promise<string>;
}

const defaultIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

/**
 * Runs the CLI. Resolves to an exit code for one-shot commands; for `run` it resolves once
 * the proxy has shut down (exit 0).
 */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  if (argv[0] === "stat") return (await import("../stat/cli.js")).statMain(argv.slice(1), io);
  if (argv[0] === "tap") return (await import("../tap/cli.js")).tapMain(argv.slice(1), io);
  if (argv[0] === "dashboard")
    return (await import("../dashboard/cli.js")).dashboardMain(argv.slice(1), io);
  const kube = await kubernetesCommand(argv, io);
  if (kube !== undefined) return kube;
  const parsed = await parseSubcommand(MAIN_COMMAND, argv, io, ({ values, positionals }) => {
    if (values.version) return { command: "version" } as const;
    const command = positionals[0] ?? "run";
    if (command === "schema") return { command } as const;
    if (command !== "run" && command !== "check") {
      const hint = suggest(command, { known: COMMANDS });
      throw new TypeError(
        `unknown command ${JSON.stringify(command)}${hint === undefined ? "" : ` (did you mean ${hint}?)`}`,
      );
    }
    const file = values.config ?? io.env[ENV_CONFIG_FILE];
    if (file === undefined || file === "")
      throw new TypeError(`--config <file> is required (or set ${ENV_CONFIG_FILE})`);
    return { command, file } as const;
  });
  if (parsed instanceof Exit) return parsed.code;
  if (parsed.command === "version") {
    io.out(`${version()}\n`);
    return 0;
  }
  if (parsed.command === "schema") {
    io.out(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    return 0;
  }
  const { command, file } = parsed;
  let config: Awaited<ReturnType<typeof loadConfigFile>>;
  try {
    config = await loadConfigFile(file, io.env);
  } catch (err) {
    if (err instanceof ConfigError) return reportProblems(file, err.problems, io);
    throw err;
  }
  const warnings = [...configLoadWarnings(config), ...retryWarnings(config)];
  if (command === "check") {
    const problems = await checkConfigFiles(config, {
      identity: dirname(resolve(file)),
      discovery: process.cwd(),
    });
    if (problems.length > 0) return reportProblems(file, problems, io);
    for (const w of warnings) io.err(`warning: ${formatProblem(w)}\n`);
    io.out(
      `${file}: ok${warnings.length > 0 ? ` (${warnings.length} warning${warnings.length === 1 ? "" : "s"})` : ""}\n`,
    );
    return 0;
  }
  return run(config, file, io, warnings);
}

/** The Kubernetes subcommands (kubernetes/cli.ts), loaded only when named. */
async function kubernetesCommand(argv: string[], io: Io): Promise<number | undefined> {
  const [command, ...rest] = argv;
  const withStdin = {
    ...io,
    stdin:
      io.stdin ??
      (async () => {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        return Buffer.concat(chunks).toString("utf8");
      }),
  };
  const cli = () => import("../kubernetes/cli.js");
  if (command === "inject") return (await cli()).injectMain(rest, withStdin, version());
  if (command === "injector") return (await cli()).injectorMain(rest, io, version());
  if (command === "install") return (await cli()).installMain(rest, io, version());
  if (command === "check" && rest.includes("--kubernetes"))
    return (await cli()).checkMain(rest, io);
  return undefined;
}

/** Prints `<file>: N problems` and one `<path>: <message>` line each; exit code 1. */
function reportProblems(file: string, problems: readonly ConfigProblem[], io: Io): number {
  io.err(`${file}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n`);
  for (const p of problems) io.err(`  ${formatProblem(p)}\n`);
  return 1;
}

async function run(
  config: Awaited<ReturnType<typeof loadConfigFile>>,
  file: string,
  io: Io,
  warnings: readonly ConfigProblem[],
): Promise<number> {
  const logger = createLogger(config.log.level);
  for (const w of warnings) logger.warn({ path: w.path }, w.message);
  let proxy: MeshProxy;
  try {
    proxy = await MeshProxy.start({ config, configFile: file, env: io.env, logger });
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "failed to start");
    return 1;
  }
  return new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (signal: string) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, "second signal, exiting now");
        resolve(1);
        return;
      }
      logger.info({ signal }, "signal received");
      void proxy.shutdown();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      logger.info("SIGHUP: reloading config");
      void proxy.reloadFromFile();
    });
    proxy.closed.then(() => resolve(0));
  });
}
