import { durationFlag, Exit, parseSubcommand } from "../cli/subcommand.js";
import { renderStatTable } from "./format.js";
import { ScrapeHistory, type StatReport, scrapeAll, statReport } from "./stat.js";
import { parseAdminTargets } from "./target.js";

/** Where `mesh-proxy stat` writes. */
export interface StatIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether `out` is a terminal (clear the screen between watch frames). Default: stdout's. */
  isTTY?: boolean;
}

/** Options of {@link statMain} for embedding and tests. */
export interface StatMainOptions {
  /** Stops `--watch` (SIGINT/SIGTERM also do in the CLI). */
  signal?: AbortSignal;
}

/** Usage of `mesh-proxy stat`. */
export const STAT_HELP = `mesh-proxy stat: golden signals of running proxies, like linkerd viz stat

Usage:
  mesh-proxy stat --admin [name=]host:port[,...] [--watch [--interval 2s]] [--window 1s] [--json] [--title <text>]

Options:
  -a, --admin <list>     admin servers to scrape (repeatable; comma-separated; name= labels a row)
  -w, --watch            print again every --interval until interrupted
  -i, --interval <dur>   watch period (default 2s)
      --window <dur>     rates over this window (default: 1s one-shot, --interval when watching)
      --timeout <dur>    per-request scrape timeout (default 2s)
      --json             one JSON object per report (one line each while watching)
      --title <text>     a line printed above each table (e.g. where a dashboard is)
  -h, --help             show this help

Per proxy, direction and authority: MTLS (tls="true" on every request), SUCCESS, RPS and
latency percentiles from /metrics; per balanced endpoint: SHARE of its backend's requests,
RPS, SUCCESS, EWMA round-trip and PENDING from /endpoints. An unreachable admin is an
error row, not a failure; exit 1 only when no admin answered.
`;

const CLEAR = "\x1b[H\x1b[2J";

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

const STAT_COMMAND = {
  name: "stat",
  help: STAT_HELP,
  flags: {
    admin: { type: "string", short: "a", multiple: true },
    watch: { type: "boolean", short: "w" },
    interval: { type: "string", short: "i" },
    window: { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
    title: { type: "string" },
  },
} as const;

/**
 * `mesh-proxy stat`: scrapes admin servers and prints success rate, rps, p50/p95/p99 and
 * mTLS status per (proxy, direction, authority), plus each endpoint's share of traffic.
 * Resolves to the exit code: 0, 1 when no admin answered (one-shot), 2 on usage errors.
 */
export async function statMain(
  argv: string[],
  io: StatIo,
  options: StatMainOptions = {},
): Promise<number> {
  const settings = await parseSubcommand(STAT_COMMAND, argv, io, ({ values }) => {
    const targets = parseAdminTargets(values.admin ?? []);
    const watch = values.watch === true;
    const intervalMs = durationFlag("interval", values.interval, 2_000, 100);
    return {
      targets,
      watch,
      json: values.json === true,
      title: values.title === undefined ? "" : `${values.title}\n\n`,
      intervalMs,
      windowMs: durationFlag("window", values.window, watch ? intervalMs : 1_000),
      timeoutMs: durationFlag("timeout", values.timeout, 2_000),
    };
  });
  if (settings instanceof Exit) return settings.code;
  const { targets, watch, json, title, intervalMs, windowMs, timeoutMs } = settings;
  const tty = io.isTTY ?? process.stdout.isTTY === true;
  const print = (report: StatReport, clear: boolean) => {
    if (json) io.out(`${JSON.stringify(report)}\n`);
    else io.out(`${clear ? CLEAR : ""}${title}${renderStatTable(report.proxies)}`);
  };

  if (!watch) {
    const before = await scrapeAll(targets, { timeoutMs });
    const stop = options.signal ?? new AbortController().signal;
    await sleep(windowMs, stop);
    const after = await scrapeAll(targets, { timeoutMs });
    const report = statReport(before, after);
    print(report, false);
    return report.proxies.some((p) => p.error === null) ? 0 : 1;
  }

  const controller = new AbortController();
  const stop = () => controller.abort();
  options.signal?.addEventListener("abort", stop, { once: true });
  const onSignal = () => stop();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const history = new ScrapeHistory(targets.length, windowMs);
    history.push(await scrapeAll(targets, { timeoutMs }));
    let next = performance.now() + intervalMs;
    while (!controller.signal.aborted) {
      await sleep(Math.max(0, next - performance.now()), controller.signal);
      if (controller.signal.aborted) break;
      next += intervalMs;
      const after = await scrapeAll(targets, { timeoutMs });
      print(statReport(history.push(after), after), tty);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    options.signal?.removeEventListener("abort", stop);
  }
  return 0;
}
