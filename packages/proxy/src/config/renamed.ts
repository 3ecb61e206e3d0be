import type { ConfigProblem } from "./errors.js";

/**
 * Config fields renamed to the option names of the library they configure. The old name
 * still works for now: it is moved to the new one before validation, and `check` and the
 * start log warn with the new name. Both names at once are a problem.
 */
const RENAMED_RETRY_FIELDS: ReadonlyArray<readonly [from: string, to: string, library: string]> = [
  ["maxBodyBytes", "maxReplayBytes", "@mesh/retry's RetryPolicy"],
];
const RENAMED_BACKOFF_FIELDS: ReadonlyArray<readonly [from: string, to: string, library: string]> =
  [["min", "base", "@mesh/retry's Backoff"]];

/** What {@link moveRenamedFields} found. */
export interface RenamedFields {
  /** Old names found and moved (warnings). */
  warnings: ConfigProblem[];
  /** Old and new name both set (errors). */
  problems: ConfigProblem[];
}

/** Moves renamed fields in `config` (mutated; pass a copy) to their new names. */
export function moveRenamedFields(config: Record<string, unknown>): RenamedFields {
  const found: RenamedFields = { warnings: [], problems: [] };
  const services = (config.outbound as { services?: unknown } | undefined)?.services;
  if (!Array.isArray(services)) return found;
  services.forEach((svc, i) => {
    if (!isObject(svc)) return;
    const at = `outbound.services[${i}]`;
    moveRetry(svc.retry, `${at}.retry`, found);
    if (Array.isArray(svc.routes))
      svc.routes.forEach((route, j) => {
        if (isObject(route)) moveRetry(route.retry, `${at}.routes[${j}].retry`, found);
      });
  });
  return found;
}

function moveRetry(retry: unknown, path: string, found: RenamedFields): void {
  if (!isObject(retry)) return;
  move(retry, path, RENAMED_RETRY_FIELDS, found);
  if (isObject(retry.backoff))
    move(retry.backoff, `${path}.backoff`, RENAMED_BACKOFF_FIELDS, found);
}

function move(
  obj: Record<string, unknown>,
  path: string,
  renames: ReadonlyArray<readonly [string, string, string]>,
  found: RenamedFields,
): void {
  for (const [from, to, library] of renames) {
    if (!(from in obj)) continue;
    if (to in obj) {
      found.problems.push({
        path: `${path}.${from}`,
        message: `expected only ${to} (${from} is its old name), got both`,
      });
      delete obj[from]; // reported once, here, not again as an unknown field
      continue;
    }
    obj[to] = obj[from];
    delete obj[from];
    found.warnings.push({
      path: `${path}.${from}`,
      message: `renamed to ${path}.${to} (the name ${library} uses); the old name still works for now`,
    });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
