/**
 * Where a fresh proxy's first requests spend their time: open loop at `rate` req/s over 16
 * keep-alive connections for `seconds`, latency from each request's intended send time
 * (coordinated omission corrected), printed per 250 ms bucket (count, p50, p99, max) and
 * overall. pair.mjs `--cold <s>` runs it against a fresh pair instead of the warm-up.
 *
 *   node cold-probe.mjs <url> [rate=1000] [seconds=20]
 */
import { Pool } from "undici";

const [url, rateArg = "1000", secondsArg = "20"] = process.argv.slice(2);
const rate = Number(rateArg);
const total = rate * Number(secondsArg);
const pool = new Pool(new URL(url).origin, { connections: 16, pipelining: 1 });
const path = new URL(url).pathname;
const lat = new Float64Array(total);
// Diagnosis: COLD_SEQ=n sends n requests one at a time first and prints each latency.
for (let k = 0; k < Number(process.env.COLD_SEQ ?? 0); k++) {
  const t = performance.now();
  const res = await pool.request({ method: "GET", path });
  await res.body.dump();
  process.stdout.write(`seq ${k}: ${(performance.now() - t).toFixed(1)} ms\n`);
}
const t0 = performance.now() + 50;
let done = 0;
await new Promise((resolve) => {
  let i = 0;
  const tick = () => {
    const now = performance.now();
    while (i < total && t0 + (i * 1000) / rate <= now) {
      const idx = i++;
      const due = t0 + (idx * 1000) / rate;
      pool
        .request({ method: "GET", path })
        .then(async (res) => {
          await res.body.dump();
          lat[idx] = performance.now() - due;
        })
        .catch(() => {
          lat[idx] = Number.POSITIVE_INFINITY;
        })
        .finally(() => {
          if (++done === total) resolve();
        });
    }
    if (i < total) setTimeout(tick, 1);
  };
  tick();
});
await pool.close();
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const bucket = rate / 4;
const lines = [];
for (let b = 0; b * bucket < total; b++) {
  const xs = Array.from(lat.subarray(b * bucket, (b + 1) * bucket)).sort((a, c) => a - c);
  lines.push(
    `${((b * 250) / 1000).toFixed(2)}s n ${xs.length} p50 ${pct(xs, 0.5).toFixed(1)} p99 ${pct(xs, 0.99).toFixed(1)} max ${xs.at(-1).toFixed(1)} ms`,
  );
}
const all = Array.from(lat).sort((a, c) => a - c);
process.stdout.write(
  `${lines.join("\n")}\nCOLD n ${total} p50 ${pct(all, 0.5).toFixed(2)} p99 ${pct(all, 0.99).toFixed(2)} p99.9 ${pct(all, 0.999).toFixed(2)} max ${all.at(-1).toFixed(1)} ms\n`,
);
