/** The JSON every scenario writes to `results/<scenario>.json`. */
import type { MachineInfo, ToolStatus } from "./tools.ts";

/** A target from the issue, checked against what was measured. */
export interface TargetCheck {
  /** What is compared, e.g. "sidecar pair p99 added at 1000 rps". */
  name: string;
  /** The target as written, e.g. "≤ 1 ms". */
  target: string;
  /** The measured value as text, or null when not measured. */
  value: string | null;
  /** true/false, or null when it could not be measured (see `note`). */
  pass: boolean | null;
  note?: string;
}

/** Whether a peer ran. Unavailable peers always say why. */
export interface PeerStatus {
  name: string;
  describe: string;
  status: "ok" | "unavailable" | "failed";
  reason?: string;
}

/** A table for the report. */
export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  note?: string;
}

/** Grouped bars (e.g. latency percentiles per peer). */
export interface BarChart {
  kind: "bars";
  file: string;
  title: string;
  unit: string;
  groups: string[];
  series: Array<{ name: string; values: Array<number | null> }>;
}

/** Lines over x (e.g. amplification over time). */
export interface LineChart {
  kind: "lines";
  file: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Array<{ name: string; points: Array<[number, number]> }>;
}

/** Any chart. */
export type Chart = BarChart | LineChart;

/** The whole result file. */
export interface ScenarioResult {
  schemaVersion: 1;
  scenario: string;
  mode: "quick" | "full";
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  pinning: { peer: string | null; load: string | null; describe: string };
  tools: ToolStatus[];
  rounds: number;
  notes: string[];
  peers: PeerStatus[];
  targets: TargetCheck[];
  tables: Table[];
  charts: Chart[];
  /** Scenario-specific raw and summarised measurements. */
  data: Record<string, unknown>;
}

/** What a scenario returns; the CLI adds the common header fields. */
export type ScenarioOutput = Pick<
  ScenarioResult,
  "notes" | "peers" | "targets" | "tables" | "charts" | "data"
>;

/** Formats a number for tables: fixed decimals, or "–" when missing. */
export function fmt(value: number | null | undefined, digits = 2): string {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** Formats a spread as `median (min–max)`. */
export function fmtSpread(
  s: { median: number; min: number; max: number; n: number } | null | undefined,
  digits = 2,
): string {
  if (!s) return "–";
  if (s.n <= 1 || s.min === s.max) return s.median.toFixed(digits);
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** A spread of fractions (0..1) as percentages, as {@link fmtSpread} formats it. */
export function fmtPercentSpread(
  s: { median: number; min: number; max: number; n: number } | null | undefined,
  digits = 1,
): string {
  return s
    ? fmtSpread({ ...s, median: s.median * 100, min: s.min * 100, max: s.max * 100 }, digits)
    : "–";
}

/** A pass/fail check, `null` when either side is missing. */
export function check(
  name: string,
  target: string,
  value: number | null | undefined,
  ok: (v: number) => boolean,
  format: (v: number) => string,
  missingNote?: string,
): TargetCheck {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return { name, target, value: null, pass: null, note: missingNote ?? "not measured" };
  }
  return { name, target, value: format(value), pass: ok(value) };
}

/**
 * Adds the outcome of every peer that ran (`failed` with its reason, else `ok`) to
 * `statuses`, which already holds the unavailable ones, and orders them as `declared`.
 */
export function settlePeerStatuses(
  statuses: PeerStatus[],
  ran: readonly { name: string; describe: string }[],
  failures: ReadonlyMap<string, string>,
  declared: readonly { name: string }[],
): void {
  for (const { name, describe } of ran) {
    const reason = failures.get(name);
    statuses.push(
      reason === undefined
        ? { name, describe, status: "ok" }
        : { name, describe, status: "failed", reason },
    );
  }
  const order = (name: string) => declared.findIndex((d) => d.name === name);
  statuses.sort((a, b) => order(a.name) - order(b.name));
}

/** Why `name` has no numbers (`<name> <status>: <reason>`), or undefined when it ran. */
export function statusNote(statuses: readonly PeerStatus[], name: string): string | undefined {
  const st = statuses.find((p) => p.name === name);
  return st && st.status !== "ok" ? `${name} ${st.status}: ${st.reason}` : undefined;
}

/** A variant of a scenario that may be unavailable here (e.g. a @mesh package not built). */
export interface OptionalVariant {
  name: string;
  describe: string;
  /** Why it cannot run, or null. */
  unavailable(): Promise<string | null>;
}

/**
 * Splits `variants` into those that can run (`active`, in order) and the statuses of those
 * that cannot (`peers`, each with its reason), which {@link settlePeerStatuses} completes.
 */
export async function splitAvailable<V extends OptionalVariant>(
  variants: readonly V[],
): Promise<{ peers: PeerStatus[]; active: V[] }> {
  const peers: PeerStatus[] = [];
  const active: V[] = [];
  for (const v of variants) {
    const reason = await v.unavailable();
    if (reason) peers.push({ name: v.name, describe: v.describe, status: "unavailable", reason });
    else active.push(v);
  }
  return { peers, active };
}

/**
 * Table rows of per-variant spreads: the name, then `fmtSpread(summary[name][key], digits)`
 * for each `[key, digits]` column.
 */
export function spreadRows<K extends string>(
  summary: Record<string, Partial<Record<K, Parameters<typeof fmtSpread>[0]>>>,
  columns: ReadonlyArray<readonly [K, number]>,
): string[][] {
  return Object.keys(summary).map((n) => [
    n,
    ...columns.map(([key, digits]) => fmtSpread(summary[n]![key], digits)),
  ]);
}
