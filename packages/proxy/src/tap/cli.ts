import http from "node:http";
import { createInterface } from "node:readline";
import { Exit, integerFlag, parseSubcommand } from "../cli/subcommand.js";
import { parseHostPort } from "../config/address.js";
import { parseAdminTargets } from "../stat/target.js";
import { parseTapFilter, TAP_FILTER_PARAMS, type TapFilter, tapFilterQuery } from "./filter.js";
import { formatTapLine, type TapLine } from "./format.js";

/** Where `mesh-proxy tap` writes. */
export interface TapIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

/** Options of {@link tapMain} for embedding and tests. */
export interface TapMainOptions {
  /** Stops the stream (SIGINT/SIGTERM also do in the CLI). */
  signal?: AbortSignal;
}

/** Environment variable holding the bearer token (`admin.tap.token`) when `--token` is absent. */
export const TAP_TOKEN_ENV = "MESH_TAP_TOKEN";

/** Usage of `mesh-proxy tap`. */
export const TAP_HELP = `mesh-proxy tap: live requests through running proxies, like linkerd viz tap

Usage:
  mesh-proxy tap --admin [name=]host:port[,...] [filters] [--json] [--count <n>]

Filters (all optional; every one given must match):
      --direction <d>    inbound or outbound
      --authority <a>    authority (books matches books:8080 too)
      --path <prefix>    path prefix, e.g. /api
      --method <m>       HTTP method
      --route <name>     route name (outbound)
      --status <s>       2xx, 4xx, 5xx, an exact status such as 503, or error (failed by the proxy)
      --identity <id>    SPIFFE ID of the client (inbound) or server (outbound)
      --sample <r>       show this share of matching requests, 0 < r <= 1 (default 1)

Options:
  -a, --admin <list>     admin servers to tap (repeatable; comma-separated; name= labels lines)
      --token <t>        bearer token when the proxy sets admin.tap.token (default: $${TAP_TOKEN_ENV})
      --json             print the raw NDJSON events
  -n, --count <n>        exit after n requests
  -h, --help             show this help

Each request is printed when it ends. Without admin.tap.token a proxy serves tap to
loopback clients only. A reader too slow for the traffic gets events dropped, never the
proxy's memory: "# dropped N events" says how many.
`;

const TAP_COMMAND = {
  name: "tap",
  help: TAP_HELP,
  flags: {
    admin: { type: "string", short: "a", multiple: true },
    token: { type: "string" },
    json: { type: "boolean" },
    count: { type: "string", short: "n" },
    ...(Object.fromEntries(TAP_FILTER_PARAMS.map((p) => [p, { type: "string" }])) as Record<
      (typeof TAP_FILTER_PARAMS)[number],
      { type: "string" }
    >),
  },
} as const;

/** The stream of one admin server, line by line; resolves when it ends. */
function tapOne(
  address: string,
  query: string,
  token: string | undefined,
  signal: AbortSignal,
  onLine: (line: string) => void,
): Promise<void> {
  const hp = parseHostPort(address) as { host: string; port: number };
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: hp.host,
        port: hp.port,
        path: `/tap${query}`,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        signal,
      },
      (res) => {
        if (res.statusCode !== 200) {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () =>
            reject(new Error(`${address}: HTTP ${res.statusCode}: ${body.trim()}`)),
          );
          return;
        }
        const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
        lines.on("line", onLine);
        // An aborted stream (the proxy went away) ends like a closed one; tapMain reports it.
        lines.on("error", () => {});
        lines.on("close", () => resolve());
      },
    );
    req.on("error", (err) => {
      if (signal.aborted) resolve();
      else reject(new Error(`${address}: ${err.message}`));
    });
  });
}

/**
 * `mesh-proxy tap`: streams requests from admin servers' `GET /tap` and prints them as they
 * end. Resolves to the exit code: 0 when stopped (signal or `--count` reached), 1 when a
 * stream failed or ended, 2 on usage errors.
 */
export async function tapMain(
  argv: string[],
  io: TapIo,
  options: TapMainOptions = {},
): Promise<number> {
  const settings = await parseSubcommand(TAP_COMMAND, argv, io, ({ values }) => {
    const targets = parseAdminTargets(values.admin ?? []);
    const params = new URLSearchParams();
    for (const p of TAP_FILTER_PARAMS) {
      const v = values[p];
      if (v !== undefined) params.set(p, v);
    }
    let filter: TapFilter;
    try {
      filter = parseTapFilter(params);
    } catch (err) {
      throw new TypeError(`--${(err as Error).message}`);
    }
    const token = values.token ?? io.env[TAP_TOKEN_ENV];
    return {
      targets,
      filter,
      json: values.json === true,
      count: values.count === undefined ? undefined : integerFlag("count", values.count, 0, 1),
      token: token === "" ? undefined : token,
    };
  });
  if (settings instanceof Exit) return settings.code;
  const { targets, filter, json, count, token } = settings;
  const controller = new AbortController();
  const stop = () => controller.abort();
  options.signal?.addEventListener("abort", stop, { once: true });
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const query = tapFilterQuery(filter);
  let seen = 0;
  const named = targets.length > 1;
  try {
    await Promise.all(
      targets.map(async (t) => {
        await tapOne(t.address, query, token, controller.signal, (line) => {
          if (controller.signal.aborted) return;
          let e: { type?: string; count?: number };
          try {
            e = JSON.parse(line) as typeof e;
          } catch {
            return;
          }
          if (e.type === "dropped") {
            if (json) io.out(`${line}\n`);
            else
              io.err(
                `# ${named ? `${t.name}: ` : ""}dropped ${e.count} events (reading too slowly)\n`,
              );
            return;
          }
          if (e.type !== "request") return;
          io.out(
            json ? `${line}\n` : `${formatTapLine(e as TapLine, named ? t.name : undefined)}\n`,
          );
          seen++;
          if (count !== undefined && seen >= count) controller.abort();
        });
        if (!controller.signal.aborted)
          throw new Error(`${t.address}: the tap stream ended (proxy shut down?)`);
      }),
    );
    return 0;
  } catch (err) {
    controller.abort();
    io.err(`mesh-proxy tap: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    options.signal?.removeEventListener("abort", stop);
  }
}
