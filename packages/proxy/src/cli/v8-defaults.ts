import { setFlagsFromString } from "node:v8";

/** One V8 setting the launcher applies unless the user tuned the same thing. */
interface V8Default {
  /** The flag, as on a node command line. */
  flag: string;
  /** A user flag matching this means "tuned already": leave it alone. */
  tunedBy: RegExp;
}

/**
 * The V8 settings `mesh-proxy` starts with, for a sidecar's memory and CPU budget. All can
 * be set once the process runs, so the launcher needs no wrapper process; measured on the
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
 * The sidecar V8 flags to apply, given the flags node was started with (`execArgv`) and
 * `NODE_OPTIONS`: each default is skipped when the user set a flag tuning the same thing.
 */
export function sidecarV8Flags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string[] {
  const user = `${execArgv.join(" ")} ${nodeOptions ?? ""}`;
  return SIDECAR_V8_DEFAULTS.filter((d) => !d.tunedBy.test(user)).map((d) => d.flag);
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
