export { formatHostPort, type HostPort, parseHostPort } from "./address.js";
export { formatDuration, parseDuration } from "./duration.js";
export { applyEnvOverrides, ENV_CONFIG_FILE, ENV_PREFIX, envPath } from "./env.js";
export { ConfigError, type ConfigProblem, formatProblem } from "./errors.js";
export { type ConfigFileBases, checkConfigFiles } from "./files.js";
export { configJsonSchema } from "./json-schema.js";
export {
  type ConfigResult,
  configLoadWarnings,
  loadConfigFile,
  parseConfigText,
  validateConfig,
} from "./load.js";
export { retryWarnings } from "./retry-conditions.js";
export * from "./schema.js";
