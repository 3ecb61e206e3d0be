// Cost of recording one request on a resolved handle (ns/op).
// Run from packages/metrics after `npx tsup`: `node bench/record-cost.mjs`
import { GoldenSignals, NOOP_SIGNALS } from "../dist/index.js";

function run(label, recorder) {
  const h = recorder.http({
    direction: "outbound",
    authority: "web:80",
    tls: true,
    route: "GET /",
  });
  const statuses = [200, 200, 200, 200, 503, 404, 200, 200];
  const n = 5_000_000;
  for (let i = 0; i < 200_000; i++) {
    h.request();
    h.response(statuses[i & 7], -1, i & 63);
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    h.request();
    h.response(statuses[i & 7], -1, i & 63);
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${label}: ${ns.toFixed(1)} ns per request (request() + response())`);
}
const signals = new GoldenSignals();
for (let r = 0; r < 3; r++) {
  run("GoldenSignals", signals);
  run("NOOP_SIGNALS ", NOOP_SIGNALS);
}
const resolve0 = process.hrtime.bigint();
for (let i = 0; i < 100_000; i++)
  signals.http({ direction: "outbound", authority: `a${i % 100}:80`, tls: true });
console.log(
  `resolve handle (interned): ${(Number(process.hrtime.bigint() - resolve0) / 100_000).toFixed(1)} ns`,
);
