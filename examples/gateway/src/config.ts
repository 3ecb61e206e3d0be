/** Everything the gateway reads from its environment, validated. */
export interface GatewayConfig {
  /** Port to listen on; 0 picks a free one. `PORT`, default 8080. */
  port: number;
  /** Address to bind. `HOST`, default 127.0.0.1. */
  host: string;
  /** `host:port` upstreams, or `undefined` to start demo upstreams. `UPSTREAMS`. */
  upstreams: string[] | undefined;
  /** Deadline over all attempts of one request. `REQUEST_TIMEOUT_MS`, default 10000. */
  requestTimeoutMs: number;
  /** Deadline of one attempt, until response headers. `PER_TRY_TIMEOUT_MS`, default 2000. */
  perTryTimeoutMs: number;
  /** How long SIGTERM waits for requests in flight. `SHUTDOWN_GRACE_MS`, default 10000. */
  shutdownGraceMs: number;
}

type Env = Record<string, string | undefined>;

/**
 * Reads the gateway's configuration from `env`. Throws `TypeError`/`RangeError` in the form
 * `<VAR>: expected <what>, got <value>`.
 */
export function loadConfig(env: Env): GatewayConfig {
  return {
    port: integer(env, "PORT", 8080, 0, 65_535),
    host: env.HOST || "127.0.0.1",
    upstreams: upstreamList(env.UPSTREAMS),
    requestTimeoutMs: integer(env, "REQUEST_TIMEOUT_MS", 10_000, 1, 3_600_000),
    perTryTimeoutMs: integer(env, "PER_TRY_TIMEOUT_MS", 2_000, 1, 3_600_000),
    shutdownGraceMs: integer(env, "SHUTDOWN_GRACE_MS", 10_000, 0, 3_600_000),
  };
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n)) {
    throw new TypeError(`${name}: expected an integer, got ${JSON.stringify(raw)}`);
  }
  if (n < min || n > max) {
    throw new RangeError(`${name}: expected an integer in ${min}..${max}, got ${n}`);
  }
  return n;
}

function upstreamList(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const list = raw.split(",").map((s) => s.trim());
  list.forEach((address, i) => {
    // host:port or [v6]:port; @mesh/balancer validates further when it parses them.
    if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(address)) {
      throw new TypeError(
        `UPSTREAMS[${i}]: expected host:port, got ${JSON.stringify(address)} (in ${JSON.stringify(raw)})`,
      );
    }
  });
  return list;
}
