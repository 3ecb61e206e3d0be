import { readFile } from "node:fs/promises";
import { durationFlag, Exit, parseSubcommand } from "../cli/subcommand.js";
import { parseAdminTargets } from "../stat/target.js";
import { TAP_TOKEN_ENV, type TapIo, type TapMainOptions } from "../tap/cli.js";
import { DashboardServer } from "./server.js";

/** Where `mesh-proxy dashboard` writes (as `mesh-proxy tap`). */
export type DashboardIo = TapIo;

/** Options of {@link dashboardMain} for embedding and tests: `signal` stops the server. */
export type DashboardMainOptions = TapMainOptions;

/** Usage of `mesh-proxy dashboard`. */
export const DASHBOARD_HELP = `mesh-proxy dashboard: a live web view of running proxies, like linkerd viz dashboard

Usage:
  mesh-proxy dashboard --admin [name=]host:port[,...] [--admins-file <file>] [--listen 127.0.0.1:50750]

Options:
  -a, --admin <list>       admin servers to show (repeatable; comma-separated; name= labels one)
      --admins-file <f>    more admins, one [name=]host:port per line (# comments)
  -l, --listen <addr>      where the page is served (default 127.0.0.1:50750; port 0 picks one)
  -i, --interval <dur>     scrape period (default 2s)
      --history <dur>      sparkline span (default 5m)
      --timeout <dur>      per-request scrape timeout (default 2s)
      --token <t>          bearer token for the admins' /tap (default: $${TAP_TOKEN_ENV})
  -h, --help               show this help

The page shows the topology (workloads, edges with RPS, success and mTLS identity), golden
signals per proxy, authority and route with sparklines, each balancer's endpoints (share,
EWMA, state) and a live tap with filters; it updates over server-sent events. An admin that
stops answering is shown down while the others keep updating. It prints the page's URL,
then runs until interrupted.
`;

const DASHBOARD_COMMAND = {
  name: "dashboard",
  help: DASHBOARD_HELP,
  flags: {
    admin: { type: "string", short: "a", multiple: true },
    "admins-file": { type: "string" },
    listen: { type: "string", short: "l" },
    interval: { type: "string", short: "i" },
    history: { type: "string" },
    timeout: { type: "string" },
    token: { type: "string" },
  },
} as const;

/**
 * `mesh-proxy dashboard`: serves the dashboard until interrupted. Resolves to the exit code:
 * 0 when stopped, 1 when the page could not be served, 2 on usage errors.
 */
export async function dashboardMain(
  argv: string[],
  io: DashboardIo,
  options: DashboardMainOptions = {},
): Promise<number> {
  const settings = await parseSubcommand(DASHBOARD_COMMAND, argv, io, async ({ values }) => {
    const admins = [...(values.admin ?? [])];
    const file = values["admins-file"];
    if (file !== undefined) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (err) {
        throw new TypeError(`--admins-file: cannot read ${file}: ${(err as Error).message}`);
      }
      for (const line of text.split("\n")) {
        const entry = line.replace(/#.*$/, "").trim();
        if (entry !== "") admins.push(entry);
      }
    }
    const targets = parseAdminTargets(admins);
    const names = new Set<string>();
    for (const t of targets) {
      if (names.has(t.name))
        throw new TypeError(
          `--admin: expected distinct names, got ${JSON.stringify(t.name)} twice`,
        );
      names.add(t.name);
    }
    const intervalMs = durationFlag("interval", values.interval, 2_000, 100);
    return {
      listen: values.listen ?? "127.0.0.1:50750",
      server: new DashboardServer({
        targets,
        intervalMs,
        historyMs: durationFlag("history", values.history, 300_000, intervalMs),
        timeoutMs: durationFlag("timeout", values.timeout, 2_000),
        tapToken: values.token ?? (io.env[TAP_TOKEN_ENV] || undefined),
      }),
    };
  });
  if (settings instanceof Exit) return settings.code;
  const { listen, server } = settings;
  let url: string;
  try {
    url = await server.listen(listen);
  } catch (err) {
    io.err(`mesh-proxy dashboard: cannot serve on ${listen}: ${(err as Error).message}\n`);
    return 1;
  }
  io.out(`mesh-proxy dashboard: ${url}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    options.signal?.addEventListener("abort", stop, { once: true });
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.close();
  return 0;
}
