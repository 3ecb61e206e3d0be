import { MeshError } from "@mesh/core";
import type { z } from "zod";

/** One problem found in a configuration, with the path of the offending field. */
export interface ConfigProblem {
  /** Dotted path with indices, e.g. `outbound.services[1].retry.limit` (empty for the root). */
  path: string;
  /** `expected <what>, got <value>`, or another short description. */
  message: string;
}

/** Thrown when a configuration cannot be read or is invalid; lists every problem. */
export class ConfigError extends MeshError<"MESH_PROXY_CONFIG_INVALID"> {
  /** Every problem found, in document order. */
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[], source?: string) {
    super(
      "MESH_PROXY_CONFIG_INVALID",
      `${source === undefined ? "invalid config" : `invalid config ${source}`}:\n${problems
        .map((p) => `  ${formatProblem(p)}`)
        .join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Renders a problem as `<path>: <message>`. */
export function formatProblem(p: ConfigProblem): string {
  return p.path === "" ? p.message : `${p.path}: ${p.message}`;
}

/** Formats a path array as `a.b[1].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/** Short, single-line rendering of a user value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg as string];
  }
  return cur;
}

/**
 * Turns zod issues into problems with paths, reading the offending value from the raw
 * input. `sources` maps a path to the environment variable that set it, for the message.
 */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  raw: unknown,
  sources?: ReadonlyMap<string, string>,
): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  const push = (path: readonly PropertyKey[], message: string) => {
    const p = formatPath(path);
    const env = sources?.get(p);
    const problem = { path: p, message: env === undefined ? message : `${message} (from ${env})` };
    const key = formatProblem(problem);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(problem);
    }
  };
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) push([...issue.path, key], "unknown field");
      continue;
    }
    if (
      issue.code === "invalid_union" &&
      issue.errors.length > 0 &&
      !issue.message.startsWith("expected")
    ) {
      // No branch-level message: report the deepest problems of the closest branch.
      const best = issue.errors.reduce((a, b) => (a.length <= b.length ? a : b));
      out.push(
        ...problemsFromIssues(best, raw, sources).filter((p) => !seen.has(formatProblem(p))),
      );
      continue;
    }
    if (issue.code === "custom" && (issue.params as { complete?: boolean } | undefined)?.complete) {
      push(issue.path, issue.message);
      continue;
    }
    const value = valueAt(raw, issue.path);
    const what = issue.message.startsWith("expected")
      ? issue.message
      : `expected ${defaultWhat(issue)}`;
    push(issue.path, `${what}, got ${describeValue(value === undefined ? issue.input : value)}`);
  }
  return out;
}

function defaultWhat(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected;
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "too_small":
      return `at least ${String(issue.minimum)}`;
    case "too_big":
      return `at most ${String(issue.maximum)}`;
    case "invalid_format":
      return issue.format;
    default:
      return issue.message;
  }
}
