/**
 * The sidecar pairs side by side (issue 17): one table with a row per metric, a column per
 * pair (the @mesh pair and the reference pairs that ran) and the @mesh pair as a ratio to
 * each reference pair. Ratios are taken per round (the pairs of one round ran back to back)
 * and summarised as median (min–max), like every other number of the harness.
 */
import { fmtSpread, type Table } from "../lib/result.ts";
import { round, type Spread, spread } from "../lib/stats.ts";

/** The @mesh sidecar pair's peer name, in every scenario that runs it. */
export const MESH_PAIR = "mesh-sidecar-pair";
/**
 * Design options of the @mesh pair measured as peers of their own (issue 17): the HTTP/1.1
 * hop between the sidecars (`outbound.meshHttp1: http1`) and the caller's outbound side
 * in-process (proxyless) in front of the inbound sidecar. Shown next to the pair, no ratios.
 */
export const MESH_DESIGN_PAIRS = ["mesh-pair-http1-hop", "mesh-proxyless"] as const;
/** The reference pairs (src/peers/pairs.ts), in report order. */
export const REFERENCE_PAIRS = ["node-pair", "nginx-pair", "haproxy-pair"] as const;

/** One row: how to read a metric's per-round values for a pair. */
export interface PairMetric {
  /** Row label and JSON key, e.g. "added p99 @1000 rps (ms)". */
  metric: string;
  digits: number;
  values(pair: string): Array<{ round: number; value: number | null | undefined }>;
}

/** What {@link pairsTable} computed, for the JSON (`data.pairs`). */
export interface PairsSummary {
  pairs: string[];
  /** metric → pair → median (min–max) over rounds. */
  values: Record<string, Record<string, Spread | null>>;
  /** metric → reference pair → the @mesh pair's value ÷ the reference's, per round. */
  meshRatio: Record<string, Record<string, Spread | null>>;
}

/** The @mesh pair ÷ `reference`, per round in which both have a value. */
export function perRoundRatio(row: PairMetric, reference: string): Spread | null {
  const ref = new Map(row.values(reference).map((v) => [v.round, v.value]));
  return spread(
    row.values(MESH_PAIR).map(({ round: r, value }) => {
      const w = ref.get(r);
      return typeof value === "number" && typeof w === "number" && w !== 0
        ? round(value / w, 3)
        : null;
    }),
  );
}

/** The side-by-side table of the pairs in `ran` (others are left out) and its summary. */
export function pairsTable(
  title: string,
  rows: PairMetric[],
  ran: readonly string[],
  note?: string,
): { table: Table; summary: PairsSummary } {
  const pairs = [MESH_PAIR, ...MESH_DESIGN_PAIRS, ...REFERENCE_PAIRS].filter((p) =>
    ran.includes(p),
  );
  const refs = REFERENCE_PAIRS.filter((p) => ran.includes(p) && ran.includes(MESH_PAIR));
  const summary: PairsSummary = { pairs, values: {}, meshRatio: {} };
  const table: Table = {
    title,
    columns: ["metric", ...pairs, ...refs.map((r) => `${MESH_PAIR} ÷ ${r}`)],
    rows: rows.map((row) => {
      const values = Object.fromEntries(
        pairs.map((p) => [p, spread(row.values(p).map((v) => v.value))]),
      );
      const ratios = Object.fromEntries(refs.map((r) => [r, perRoundRatio(row, r)]));
      summary.values[row.metric] = values;
      summary.meshRatio[row.metric] = ratios;
      return [
        row.metric,
        ...pairs.map((p) => fmtSpread(values[p], row.digits)),
        ...refs.map((r) => (ratios[r] ? `${fmtSpread(ratios[r], 2)}×` : "–")),
      ];
    }),
    note,
  };
  return { table, summary };
}

/** One peer's cold start (its first requests after starting), summarised over rounds. */
export interface ColdStartSummary {
  p50: Spread | null;
  p99: Spread | null;
  p999: Spread | null;
  failed: Spread | null;
  /** Per round: cold p99 ÷ the same process's steady-state p99 at 1000 requests/s. */
  p99VsSteady: Spread | null;
}

/** The cold-start table: every peer's first requests next to its steady-state p99. */
export function coldStartTable(
  title: string,
  steadyLabel: string,
  peers: Array<{ name: string; cold: ColdStartSummary; steadyP99: Spread | null | undefined }>,
): Table {
  return {
    title,
    columns: ["peer", "p50", "p99", "p99.9", "failed", steadyLabel, "cold ÷ steady p99"],
    rows: peers.map(({ name, cold, steadyP99 }) => [
      name,
      ...[cold.p50, cold.p99, cold.p999].map((s) => fmtSpread(s, 3)),
      fmtSpread(cold.failed, 0),
      fmtSpread(steadyP99, 3),
      fmtSpread(cold.p99VsSteady, 2),
    ]),
    note: "the load generator is fresh too (its own JIT is cold), as direct's row shows; cold ÷ steady is taken per round against the same process's steady-state run",
  };
}
