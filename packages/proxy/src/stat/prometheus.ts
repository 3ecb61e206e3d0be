import { StatError } from "./errors.js";

/** One sample of the Prometheus text exposition format. */
export interface Sample {
  /** Sample name as written, e.g. `response_latency_ms_bucket`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;

function parseValue(text: string): number {
  switch (text) {
    case "+Inf":
    case "Inf":
      return Number.POSITIVE_INFINITY;
    case "-Inf":
      return Number.NEGATIVE_INFINITY;
    case "NaN":
      return Number.NaN;
    default: {
      const n = text === "" ? Number.NaN : Number(text);
      if (Number.isNaN(n)) throw new Error(`expected a number, got ${JSON.stringify(text)}`);
      return n;
    }
  }
}

/** Parses `{a="x",b="y"}` starting at `at` (the `{`); returns the labels and the index after `}`. */
function parseLabels(line: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  for (;;) {
    while (line[i] === " ") i++;
    if (line[i] === "}") return { labels, end: i + 1 };
    LABEL_NAME.lastIndex = i;
    const m = LABEL_NAME.exec(line);
    if (m === null) throw new Error(`expected a label name at column ${i + 1}`);
    const name = m[0];
    i = LABEL_NAME.lastIndex;
    if (line[i] !== "=" || line[i + 1] !== '"') {
      throw new Error(`expected ="value" after label ${name}`);
    }
    i += 2;
    let value = "";
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error(`unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === "\\") {
        const next = line[i + 1];
        value += next === "n" ? "\n" : (next ?? "");
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++;
    while (line[i] === " ") i++;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`expected , or } after label ${name}`);
  }
}

/**
 * Parses Prometheus text exposition (format 0.0.4) into samples. Comments (`# HELP`,
 * `# TYPE`) and blank lines are skipped; an optional timestamp after the value is ignored.
 *
 * @throws {StatError} `MESH_PROXY_STAT_BAD_RESPONSE` naming the line that is not a sample.
 */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] as string).trim();
    if (line === "" || line.startsWith("#")) continue;
    try {
      NAME.lastIndex = 0;
      const m = NAME.exec(line);
      if (m === null) throw new Error("expected a metric name");
      let i = NAME.lastIndex;
      let labels: Record<string, string> = {};
      if (line[i] === "{") {
        const parsed = parseLabels(line, i);
        labels = parsed.labels;
        i = parsed.end;
      }
      const rest = line.slice(i).trim().split(/\s+/);
      if (rest.length < 1 || rest.length > 2) throw new Error("expected a value");
      samples.push({ name: m[0], labels, value: parseValue(rest[0] as string) });
    } catch (err) {
      throw new StatError(
        "MESH_PROXY_STAT_BAD_RESPONSE",
        `metrics line ${n + 1}: ${(err as Error).message}: ${JSON.stringify(line.slice(0, 120))}`,
      );
    }
  }
  return samples;
}
