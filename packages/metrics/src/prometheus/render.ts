import { escapeHelp } from "../registry/labels.js";
import type { Registry } from "../registry/registry.js";

/** The `Content-Type` of the text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function num(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

/**
 * Renders registries in the Prometheus text exposition format 0.0.4: `# HELP` and
 * `# TYPE` per family, one line per series, histograms as cumulative `_bucket` lines plus
 * `_sum` and `_count`. Families without series are rendered with HELP/TYPE only.
 * Runs each registry's collection hooks first (idle series expiry).
 */
export function renderPrometheus(...registries: Registry[]): string {
  let out = "";
  for (const registry of registries) {
    registry.collect();
    for (const f of registry.families()) {
      out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
      if (f.type === "histogram") {
        const le = f.le;
        for (const s of f.series()) {
          const prefix = s.key === "" ? `${f.name}_bucket{le="` : `${f.name}_bucket{${s.key},le="`;
          let cumulative = 0;
          for (let i = 0; i < le.length; i++) {
            cumulative += s.counts[i]!;
            out += `${prefix}${le[i]}"} ${cumulative}\n`;
          }
          const braces = s.key === "" ? "" : `{${s.key}}`;
          out += `${f.name}_sum${braces} ${num(s.sum)}\n${f.name}_count${braces} ${s.count}\n`;
        }
      } else {
        for (const s of f.series()) {
          out +=
            s.key === "" ? `${f.name} ${num(s.value)}\n` : `${f.name}{${s.key}} ${num(s.value)}\n`;
        }
      }
    }
  }
  return out;
}
