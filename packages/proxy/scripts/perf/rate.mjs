/**
 * Open-loop load at a fixed rate: `node rate.mjs <url> <rps> <seconds>`; 16 keep-alive
 * connections, a tick every millisecond sends what is due. Prints `{ sent, ok, failed }`.
 */
import { Pool } from "undici";

const [url, rpsArg, secondsArg] = process.argv.slice(2);
const u = new URL(url);
const rps = Number(rpsArg);
const durationMs = Number(secondsArg) * 1000;
const pool = new Pool(u.origin, { connections: 16 });
let sent = 0;
let ok = 0;
let failed = 0;
const t0 = performance.now();
const send = () => {
  sent++;
  pool.request({ path: u.pathname, method: "GET" }).then(
    async (r) => {
      await r.body.dump();
      if (r.statusCode === 200) ok++;
      else failed++;
    },
    () => failed++,
  );
};
await new Promise((resolve) => {
  const tick = setInterval(() => {
    const elapsed = performance.now() - t0;
    const due = Math.floor((Math.min(elapsed, durationMs) * rps) / 1000);
    while (sent < due) send();
    if (elapsed >= durationMs) {
      clearInterval(tick);
      resolve();
    }
  }, 1);
});
while (ok + failed < sent) await new Promise((r) => setTimeout(r, 5));
await pool.close();
process.stdout.write(`${JSON.stringify({ sent, ok, failed })}\n`);
