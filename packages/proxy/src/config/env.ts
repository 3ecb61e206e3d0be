/**
 * Environment overrides. `MESH_PROXY_<SEGMENT>__<SEGMENT>...` sets the config field at that
 * path: segments are separated by a double underscore, words inside a segment by a single
 * underscore and become camelCase, numeric segments index lists. Values are parsed as
 * JSON when they look like JSON (numbers, booleans, lists, objects), else taken as text.
 *
 * `MESH_PROXY_LOG__LEVEL=debug` → `log.level`;
 * `MESH_PROXY_INBOUND__MAX_CONCURRENT_REQUESTS=500` → `inbound.maxConcurrentRequests`;
 * `MESH_PROXY_OUTBOUND__SERVICES__0__RETRY__LIMIT=3` → `outbound.services[0].retry.limit`.
 *
 * `MESH_PROXY_CONFIG` is not an override: it names the config file when `--config` is absent.
 */

/** Prefix of every override variable. */
export const ENV_PREFIX = "MESH_PROXY_";
/** Variable naming the config file. */
export const ENV_CONFIG_FILE = "MESH_PROXY_CONFIG";

/** Converts `MAX_CONCURRENT_REQUESTS` into `maxConcurrentRequests`, `0` into 0. */
function segmentKey(segment: string): string | number {
  if (/^\d+$/.test(segment)) return Number(segment);
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function parseValue(text: string): unknown {
  const t = text.trim();
  if (/^(?:-?\d+(?:\.\d+)?|true|false|null|\[.*\]|\{.*\})$/s.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      return text;
    }
  }
  return text;
}

/** The config path an override variable targets, or undefined if the name is not one. */
export function envPath(name: string): (string | number)[] | undefined {
  if (!name.startsWith(ENV_PREFIX) || name === ENV_CONFIG_FILE) return undefined;
  const rest = name.slice(ENV_PREFIX.length);
  if (rest === "") return undefined;
  const parts = rest.split("__");
  if (parts.some((p) => p === "")) return undefined;
  return parts.map(segmentKey);
}

/**
 * Applies `MESH_PROXY_*` overrides to a raw (unparsed) config object, returning a new
 * object and, for error messages, which variable set which path.
 */
export function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): { config: Record<string, unknown>; sources: Map<string, string> } {
  const config = structuredClone(raw);
  const sources = new Map<string, string>();
  for (const name of Object.keys(env).sort()) {
    const path = envPath(name);
    const value = env[name];
    if (path === undefined || value === undefined) continue;
    let cur: Record<string | number, unknown> = config;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i] as string | number;
      const next = cur[key];
      if (next === null || typeof next !== "object") {
        cur[key] = typeof path[i + 1] === "number" ? [] : {};
      }
      cur = cur[key] as Record<string | number, unknown>;
    }
    cur[path[path.length - 1] as string | number] = parseValue(value);
    sources.set(
      path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join(""),
      name,
    );
  }
  return { config, sources };
}
