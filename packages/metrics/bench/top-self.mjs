// Prints the functions with the most self time in a V8 .cpuprofile.
// Usage: node bench/top-self.mjs <file.cpuprofile> [count]
import { readFileSync } from "node:fs";

const profile = JSON.parse(readFileSync(process.argv[2], "utf8"));
const count = Number(process.argv[3] ?? 40);
const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const dt = profile.timeDeltas;
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const n = byId.get(profile.samples[i]);
  const f = n.callFrame;
  const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-3).join("/")}:${f.lineNumber + 1}`;
  const d = dt[i] ?? 0;
  self.set(key, (self.get(key) ?? 0) + d);
  total += d;
}
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, count);
for (const [k, v] of rows) console.log(`${((v / total) * 100).toFixed(2).padStart(6)}%  ${k}`);
