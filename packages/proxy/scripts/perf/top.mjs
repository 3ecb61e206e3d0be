/**
 * Summarises a `.cpuprofile` (node --cpu-prof): self time per function, top N.
 * Usage: `node top.mjs <file.cpuprofile> [n]`.
 */
import { readFileSync } from "node:fs";

const prof = JSON.parse(readFileSync(process.argv[2], "utf8"));
const n = Number(process.argv[3] ?? 40);
const byId = new Map(prof.nodes.map((node) => [node.id, node]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const node = byId.get(prof.samples[i]);
  const cf = node.callFrame;
  const file = cf.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/packages\//, "");
  const key = `${cf.functionName || "(anon)"} ${file}:${cf.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, n);
for (const [key, us] of rows)
  process.stdout.write(`${((us / total) * 100).toFixed(2).padStart(6)}%  ${key}\n`);

// Self time by package/bucket.
const buckets = new Map();
for (const [key, us] of self) {
  const file = key.slice(key.indexOf(" ") + 1);
  const b =
    /^(\(|:0|wasm)/.test(file) || file.startsWith(":")
      ? key.split(" ")[0]
      : file.startsWith("node:")
        ? "node:"
        : file.split("/")[0];
  buckets.set(b, (buckets.get(b) ?? 0) + us);
}
process.stdout.write("\nby bucket:\n");
for (const [b, us] of [...buckets].sort((a, b) => b[1] - a[1]).slice(0, 25))
  process.stdout.write(`${((us / total) * 100).toFixed(2).padStart(6)}%  ${b}\n`);
