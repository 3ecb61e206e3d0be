import { setFlagsFromString } from "node:v8";

/** One V8 setting the launcher applies unless the user tuned the same thing. */
interface V8Default {
  /** The flag, as on a node command line. */
  flag: string;
  /** A user flag matching this means "tuned already": leave it alone. */
  tunedBy: RegExp;
}

/**
 * The V8 settings `mesh-proxy` applies at run time, for a sidecar's memory and CPU budget
 * (the one V8 reads only at start is in {@link STARTUP_V8_DEFAULTS}); measured on the
 * single-hop benchmark and the sidecar pair (packages/proxy/README.md, Performance):
 *
 * - `--semi-space-growth-factor=1`: the young generation stays at its initial size
 *   instead of doubling up to 2 × 32 MB (Node 24 has no pointer compression). A proxy's
 *   per-request garbage dies young, so small scavenges stay cheap.
 * - `--invocation-count-for-turbofan=1000`: V8's default of 3000 calls means ~15–20 k
 *   requests before the per-request code is optimized, and until then each request costs
 *   more CPU than in the steady state. 1000 calls get there after ~5 k requests, with the
 *   same steady-state CPU and RSS.
 *
 * Maglev, V8's mid-tier compiler, stays on. The launcher used to turn it off (~15 MB less
 * RSS under load, measured on HTTP/1.1), but a fresh pair then serves gRPC, which the
 * HTTP/1.1 warm-up does not cover, from the interpreter until TurboFan: the p99 of its first
 * 12 s of unary calls at 1000/s was 804–1,113 ms with Maglev off against 456–705 ms with it
 * on (7 of 8 paired runs better), for +6–9 MB RSS per proxy and no measurable change in
 * HTTP/1.1's steady-state CPU or cold start (`scripts/perf/grpc-stream.mjs --cold`,
 * `scripts/perf/pair.mjs --cold`). `node --no-maglev <cli>` still turns it off (NODE_OPTIONS does
 * not accept V8's tiering flags).
 */
const SIDECAR_V8_DEFAULTS: readonly V8Default[] = [
  {
    flag: "--semi-space-growth-factor=1",
    // A max size is only a cap (the image sets one for its heap budget): not growing stays
    // compatible with it. An initial size or a growth factor is a different choice.
    tunedBy: /--min[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/,
  },
  {
    flag: "--invocation-count-for-turbofan=1000",
    tunedBy: /--invocation[-_]count[-_]for[-_]turbofan/,
  },
];

/**
 * V8 settings V8 reads only as it starts (at run time they do nothing, or crash V8 in the
 * middle of a GC), so they go on node's command line: the launcher re-executes node with them
 * ({@link restartWithStartupV8Defaults}).
 *
 * - `--single-threaded-gc`: the garbage collector works on the main thread only, with no
 *   parallel scavenge, concurrent marking or sweeping on V8's worker threads. A sidecar shares
 *   a CPU (or a CPU quota) with its app and its peer proxy; V8's GC helpers there are more
 *   threads competing for the same core, and the main thread waits for them mid-GC (a
 *   scavenge of a 1 MiB young generation took up to 10–40 ms of wall time). On the sidecar
 *   pair at 1000 req/s (`scripts/perf/pair.mjs`, both proxies and the app on one CPU) the
 *   p99 the pair adds fell from 18–43 ms to 0–15 ms (lower in each of 6 rounds), with the
 *   same CPU per request.
 */
const STARTUP_V8_DEFAULTS: readonly V8Default[] = [
  {
    flag: "--single-threaded-gc",
    // Any choice about the GC's threads (or `--single-threaded` for all of V8) is the user's.
    tunedBy:
      /--(no[-_])?single[-_]threaded|--(no[-_])?(parallel|concurrent)[-_](scavenge|marking|sweeping|compaction)/,
  },
];

/** The defaults among `defaults` that the user's flags (`execArgv`, `NODE_OPTIONS`) leave open. */
function untuned(
  defaults: readonly V8Default[],
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string[] {
  const user = `${execArgv.join(" ")} ${nodeOptions ?? ""}`;
  return defaults.filter((d) => !d.tunedBy.test(user)).map((d) => d.flag);
}

/**
 * The start-only V8 flags node still lacks, given the flags it was started with (`execArgv`)
 * and `NODE_OPTIONS`: each is skipped when present or when the user tuned the same thing.
 */
export function startupV8Flags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string[] {
  return untuned(STARTUP_V8_DEFAULTS, execArgv, nodeOptions);
}

/**
 * Replaces this process, before anything else runs, with node started with
 * {@link startupV8Flags} in front of its own flags, script and arguments: `process.execve`,
 * so the PID, environment and standard streams stay (no wrapper process, no signal
 * forwarding). In the new process the flags are present, so it does not restart again.
 * Returns (doing nothing) with `MESH_V8_DEFAULTS=0`, when every flag is there or tuned by the
 * user, or where `process.execve` does not exist (Windows).
 */
export function restartWithStartupV8Defaults(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
  enabled: string | undefined = process.env[ENV_V8_DEFAULTS],
  execve: typeof process.execve = process.execve,
): void {
  if (enabled === "0" || execve === undefined) return;
  const flags = startupV8Flags(execArgv, nodeOptions);
  if (flags.length === 0) return;
  const [node, ...rest] = process.argv;
  execve(process.execPath, [node ?? process.execPath, ...flags, ...execArgv, ...rest]);
}

/**
 * The sidecar V8 flags to apply, given the flags node was started with (`execArgv`) and
 * `NODE_OPTIONS`: each default is skipped when the user set a flag tuning the same thing.
 */
export function sidecarV8Flags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string[] {
  return untuned(SIDECAR_V8_DEFAULTS, execArgv, nodeOptions);
}

/** Environment variable that turns the launcher's V8 defaults off when set to `0`. */
export const ENV_V8_DEFAULTS = "MESH_V8_DEFAULTS";

/**
 * Applies {@link sidecarV8Flags} to this process; returns the flags applied. With
 * `MESH_V8_DEFAULTS=0` (not a `MESH_PROXY_*` name, which would be a config override) it
 * applies none, so node runs with V8's own defaults.
 */
export function applySidecarV8Defaults(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
  enabled: string | undefined = process.env[ENV_V8_DEFAULTS],
): string[] {
  if (enabled === "0") return [];
  const flags = sidecarV8Flags(execArgv, nodeOptions);
  for (const flag of flags) setFlagsFromString(flag);
  return flags;
}
