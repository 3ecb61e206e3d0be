/** What every scenario gets from the CLI: options, the process manager, pinning, paths. */
import type { ProcessManager } from "./proc.ts";
import type { ToolStatus } from "./tools.ts";

/** CPU pinning plan: peers (proxies, backends) on one CPU, load generators on another. */
export interface Pinning {
  /** CPU list for the peer under test and the backend, or null when not pinned. */
  peer: string | null;
  /** CPU list for load generators (worker, wrk), or null when not pinned. */
  load: string | null;
  /** One sentence for the report. */
  describe: string;
}

/**
 * Sizes a scenario takes from the command line (`--endpoints`, `--rate`, `--update-rate`,
 * `--duration`); unset ones use the scenario's defaults (smaller with `--quick`). Only
 * `k8s-churn` reads them today.
 */
export interface ScenarioParams {
  /** Endpoints of the service under test. */
  endpoints?: number;
  /** Offered load, requests per second. */
  rate?: number;
  /** Discovery updates per second. */
  updateRate?: number;
  /** Length of the steady-state window, seconds. */
  durationS?: number;
}

/** Shared state of one harness run. */
export interface BenchContext {
  pm: ProcessManager;
  quick: boolean;
  /** Rounds per measurement (≥3 in full mode). */
  rounds: number;
  /** Install missing Debian tools with apt-get. */
  install: boolean;
  resultsDir: string;
  tmpDir: string;
  pinning: Pinning;
  /** Tools looked up during this scenario (copied into its result). */
  tools: Map<string, ToolStatus>;
  /** Sizes given on the command line. */
  params?: ScenarioParams;
  log(message: string): void;
}
