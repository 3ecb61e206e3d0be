import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parseDocument } from "yaml";
import { applyEnvOverrides } from "./env.js";
import { ConfigError, type ConfigProblem, describeValue, problemsFromIssues } from "./errors.js";
import { moveRenamedFields } from "./renamed.js";
import { configSchema, type ProxyConfig } from "./schema.js";

/** Result of validating a configuration without throwing. */
export type ConfigResult =
  | { ok: true; config: ProxyConfig }
  | { ok: false; problems: ConfigProblem[] };

/** Warnings found while validating each config (old field names), for {@link configLoadWarnings}. */
const loadWarnings = new WeakMap<ProxyConfig, ConfigProblem[]>();

/**
 * What validation noticed about a valid config without refusing it: fields given by an old
 * name (see `renamed.ts`). `check` prints them and the proxy logs them at start.
 */
export function configLoadWarnings(config: ProxyConfig): readonly ConfigProblem[] {
  return loadWarnings.get(config) ?? [];
}

/**
 * Validates a raw configuration object (already parsed from YAML/JSON), applying
 * `MESH_PROXY_*` overrides from `env` first. Collects every problem instead of stopping
 * at the first.
 */
export function validateConfig(raw: unknown, env: NodeJS.ProcessEnv = {}): ConfigResult {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return {
      ok: false,
      problems: [
        { path: "", message: `expected a mapping at the top level, got ${describeValue(raw)}` },
      ],
    };
  }
  const { config: given, sources } = applyEnvOverrides(raw as Record<string, unknown>, env);
  const config = structuredClone(given);
  const renamed = moveRenamedFields(config);
  const result = configSchema.safeParse(config, { reportInput: true });
  const problems = result.success ? [] : problemsFromIssues(result.error.issues, config, sources);
  problems.unshift(...renamed.problems);
  const nothing = proxiesNothing(config);
  if (nothing !== undefined) problems.unshift(nothing);
  if (result.success && problems.length === 0) {
    if (renamed.warnings.length > 0) loadWarnings.set(result.data, renamed.warnings);
    return { ok: true, config: result.data };
  }
  return { ok: false, problems };
}

/**
 * A config without `inbound` and `outbound` (after environment overrides) would start a proxy
 * that serves only its admin port, ready and proxying nothing: refused, as nginx and HAProxy
 * refuse an empty config.
 */
function proxiesNothing(config: Record<string, unknown>): ConfigProblem | undefined {
  if (config.inbound !== undefined || config.outbound !== undefined) return undefined;
  const present = Object.keys(config).filter((k) => k !== "$schema");
  return {
    path: "",
    message: `expected inbound and/or outbound (without either the proxy proxies nothing), got ${
      present.length === 0 ? "an empty config" : `only ${present.join(", ")}`
    }`,
  };
}

/**
 * Parses configuration text. JSON is chosen by a `.json` file name, YAML otherwise (YAML
 * is a superset of JSON, so either works).
 */
export function parseConfigText(
  text: string,
  fileName = "config.yaml",
  env: NodeJS.ProcessEnv = {},
): ConfigResult {
  let raw: unknown;
  if (extname(fileName).toLowerCase() === ".json") {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      return {
        ok: false,
        problems: [{ path: "", message: `expected JSON: ${(err as Error).message}` }],
      };
    }
  } else {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      return {
        ok: false,
        problems: doc.errors.map((e) => ({
          path: "",
          message: `expected YAML at line ${e.linePos?.[0]?.line ?? "?"}, column ${e.linePos?.[0]?.col ?? "?"}: ${e.message.split("\n")[0]}`,
        })),
      };
    }
    raw = doc.toJS();
  }
  return validateConfig(raw, env);
}

/** Reads, parses and validates a config file; throws {@link ConfigError} listing every problem. */
export async function loadConfigFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ProxyConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(
      [{ path: "", message: `cannot read ${file}: ${(err as Error).message}` }],
      file,
    );
  }
  const result = parseConfigText(text, file, env);
  if (!result.ok) throw new ConfigError(result.problems, file);
  return result.config;
}
