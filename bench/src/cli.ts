/**
 * `npm run bench -w @mesh/bench -- [scenario...] [--quick] [options]`
 *
 * Runs the named scenarios (all when none is named), writes `results/<scenario>.json`,
 * appends a section to `results/REPORT.md` (started afresh when running all), writes SVG
 * charts next to it, and prints each scenario's targets with pass/fail.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { BenchContext, Pinning, ScenarioParams } from "./lib/context.ts";
import { hasTaskset, ProcessManager } from "./lib/proc.ts";
import type { ScenarioOutput, ScenarioResult, Table } from "./lib/result.ts";
import { SRC_DIR } from "./lib/runners.ts";
import { machineInfo } from "./lib/tools.ts";
import { targetsTable, writeReport } from "./report/markdown.ts";
import { SCENARIOS } from "./scenarios/index.ts";

const USAGE = `usage: npm run bench -w @mesh/bench -- [scenario...] [options]

scenarios: ${Object.keys(SCENARIOS).join(", ")} (default: all, in that order)

options:
  --quick             seconds per scenario, 1 round (smoke test)
  --rounds <n>        rounds per measurement (default 3, quick 1)
  --results-dir <dir> where JSON, REPORT.md and SVGs go (default bench/results)
  --no-install        do not apt-get missing tools (nginx, haproxy, wrk)
  --no-pin            do not pin processes with taskset
  --fresh-report      start REPORT.md afresh (default when running all scenarios)
  --report-only       rebuild REPORT.md and the SVGs from the JSON already in --results-dir
  --help              this text

sizes (k8s-churn; defaults per scenario, smaller with --quick):
  --endpoints <n>     endpoints of the service (a multiple of 10)
  --rate <rps>        offered requests per second
  --update-rate <n>   EndpointSlice updates per second
  --duration <s>      seconds of steady state measured before the rollout
`;

/** Parsed command line. */
export interface CliOptions {
  scenarios: string[];
  quick: boolean;
  rounds: number | null;
  resultsDir: string;
  install: boolean;
  pin: boolean;
  freshReport: boolean;
  reportOnly: boolean;
  params: ScenarioParams;
}

/** The size options: flag → field, and the accepted range. */
const PARAMS: Record<
  string,
  { field: keyof ScenarioParams; min: number; max: number; multipleOf?: number }
> = {
  "--endpoints": { field: "endpoints", min: 10, max: 10_000, multipleOf: 10 },
  "--rate": { field: "rate", min: 1, max: 100_000 },
  "--update-rate": { field: "updateRate", min: 1, max: 1000 },
  "--duration": { field: "durationS", min: 1, max: 3600 },
};

/** Parses argv; throws TypeError/RangeError with `<path>: expected <what>, got <value>`. */
export function parseArgs(argv: string[]): CliOptions | "help" {
  const opts: CliOptions = {
    scenarios: [],
    quick: false,
    rounds: null,
    resultsDir: resolve(SRC_DIR, "..", "results"),
    install: true,
    pin: true,
    freshReport: false,
    reportOnly: false,
    params: {},
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new TypeError(`${arg}: expected a value, got nothing`);
      return v;
    };
    if (arg === "--help" || arg === "-h") return "help";
    else if (arg === "--quick") opts.quick = true;
    else if (arg === "--no-install") opts.install = false;
    else if (arg === "--no-pin") opts.pin = false;
    else if (arg === "--fresh-report") opts.freshReport = true;
    else if (arg === "--report-only") opts.reportOnly = true;
    else if (arg === "--results-dir") opts.resultsDir = resolve(value());
    else if (arg in PARAMS) {
      const { field, min, max, multipleOf = 1 } = PARAMS[arg]!;
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max || n % multipleOf !== 0)
        throw new RangeError(
          `${arg}: expected an integer in ${min}..${max}${multipleOf > 1 ? `, a multiple of ${multipleOf}` : ""}, got ${v}`,
        );
      opts.params[field] = n;
    } else if (arg === "--rounds") {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 20)
        throw new RangeError(`--rounds: expected an integer in 1..20, got ${v}`);
      opts.rounds = n;
    } else if (arg.startsWith("-"))
      throw new TypeError(`${arg}: expected a known option (see --help), got ${arg}`);
    else if (arg in SCENARIOS) opts.scenarios.push(arg);
    else
      throw new TypeError(
        `scenario: expected one of ${Object.keys(SCENARIOS).join(", ")}, got ${arg}`,
      );
  }
  if (opts.scenarios.length === 0) {
    opts.scenarios = Object.keys(SCENARIOS);
    opts.freshReport = true;
  }
  return opts;
}

function planPinning(pin: boolean): Pinning {
  const cpus = (process.env.MESH_BENCH_CPUS ?? "").trim();
  if (!pin) return { peer: null, load: null, describe: "none (--no-pin)" };
  if (!hasTaskset()) return { peer: null, load: null, describe: "none (taskset unavailable)" };
  const available = cpus ? cpus.split(",") : availableParallelism() >= 2 ? ["0", "1"] : ["0"];
  if (available.length < 2) return { peer: null, load: null, describe: "none (fewer than 2 CPUs)" };
  return {
    peer: available[0]!,
    load: available[1]!,
    describe: `proxies and backends on CPU ${available[0]}, load generators (worker, wrk) on CPU ${available[1]} (taskset -c); the harness process is not pinned`,
  };
}

async function main(): Promise<number> {
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (parsed.reportOnly) return rebuildReport(parsed);
  const pm = new ProcessManager();
  pm.install();
  mkdirSync(parsed.resultsDir, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), "mesh-bench-"));
  const pinning = planPinning(parsed.pin);
  let failed = 0;
  let fresh = parsed.freshReport;
  try {
    for (const name of parsed.scenarios) {
      const machine = await machineInfo();
      const ctx: BenchContext = {
        pm,
        quick: parsed.quick,
        rounds: parsed.rounds ?? (parsed.quick ? 1 : 3),
        install: parsed.install,
        resultsDir: parsed.resultsDir,
        tmpDir: tmp,
        pinning,
        tools: new Map(),
        params: parsed.params,
        log: (m) => process.stderr.write(`[bench] ${m}\n`),
      };
      const startedAt = new Date().toISOString();
      ctx.log(
        `${name}: start (${parsed.quick ? "quick" : "full"}, load ${machine.loadAvgAtStart.join(" ")})`,
      );
      let output: ScenarioOutput;
      try {
        output = await SCENARIOS[name]!.run(ctx);
      } catch (error) {
        failed++;
        ctx.log(`${name}: FAILED ${(error as Error).stack ?? error}`);
        output = {
          notes: [`scenario failed: ${(error as Error).message}`],
          peers: [],
          targets: [],
          tables: [],
          charts: [],
          data: { error: (error as Error).message },
        };
      } finally {
        await pm.stopAll();
      }
      const result: ScenarioResult = {
        schemaVersion: 1,
        scenario: name,
        mode: parsed.quick ? "quick" : "full",
        startedAt,
        finishedAt: new Date().toISOString(),
        machine,
        pinning,
        tools: [...ctx.tools.values()],
        rounds: ctx.rounds,
        ...output,
      };
      writeFileSync(
        join(parsed.resultsDir, `${name}.json`),
        `${JSON.stringify(result, null, 2)}\n`,
      );
      writeReport(parsed.resultsDir, result, fresh);
      fresh = false;
      printSummary(result, parsed.resultsDir);
    }
  } finally {
    await pm.stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  return failed === 0 ? 0 : 1;
}

/** Rebuilds REPORT.md (afresh) and the SVGs from the JSON files of the chosen scenarios. */
function rebuildReport(parsed: CliOptions): number {
  let fresh = true;
  for (const name of parsed.scenarios) {
    const file = join(parsed.resultsDir, `${name}.json`);
    if (!existsSync(file)) continue;
    const result = JSON.parse(readFileSync(file, "utf8")) as ScenarioResult;
    writeReport(parsed.resultsDir, result, fresh);
    fresh = false;
  }
  if (fresh) {
    process.stderr.write(`bench: no result JSON in ${parsed.resultsDir}\n`);
    return 1;
  }
  process.stdout.write(`rebuilt ${join(parsed.resultsDir, "REPORT.md")}\n`);
  return 0;
}

function printSummary(result: ScenarioResult, resultsDir: string): void {
  const t = targetsTable(result.targets);
  const out: string[] = [`\n== ${result.scenario} (${result.mode})`];
  for (const p of result.peers)
    if (p.status !== "ok") out.push(`  ${p.name}: ${p.status} — ${p.reason}`);
  for (const table of result.tables) out.push("", `  ${table.title}`, ...alignedRows(table));
  out.push("", "  Targets:");
  for (const row of t.rows)
    out.push(`  [${row[3]}] ${row[0]}: wanted ${row[1]}, measured ${row[2]}`);
  out.push(`  → ${join(resultsDir, `${result.scenario}.json`)}, REPORT.md`);
  process.stdout.write(`${out.join("\n")}\n`);
}

/** A table as fixed-width console lines. */
function alignedRows(table: Table): string[] {
  const rows = [table.columns, ...table.rows];
  const widths = table.columns.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => `    ${r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")}`);
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`bench: ${(error as Error).message}\n${USAGE}`);
      process.exit(2);
    },
  );
}
