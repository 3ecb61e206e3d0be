/**
 * The HTTP/2 rapid-reset probe of issue 16: one h2c client opens N streams through the
 * outbound listener and cancels each at once, while a second client sends a GET every 20 ms.
 * Prints what reached the HTTP/1.1 backend (requests, connections), the proxy's RSS before
 * and after, the slowest normal request, the GOAWAY code, and how long SIGTERM takes.
 *
 *   node scripts/perf/rapid-reset.mjs [path/to/cli.js] [streams = 20000]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitPort } from "./ports.mjs";

const here = dirname(fileURLToPath(import.meta.url));

// The attacker runs in its own process (`--attack <port> <streams>`): in the probe's process
// its busy loop would delay the normal client's own callbacks and pass for a proxy stall.
if (process.argv[2] === "--attack") {
  const [port, streams] = process.argv.slice(3).map(Number);
  const attacker = http2.connect(`http://127.0.0.1:${port}`, { peerMaxConcurrentStreams: 100_000 });
  attacker.on("error", () => {});
  let goaway = null;
  attacker.on("goaway", (code) => {
    goaway = code;
  });
  await new Promise((r) => attacker.once("connect", r));
  const t0 = performance.now();
  for (let i = 0; i < streams && !attacker.destroyed && !attacker.closed; i++) {
    try {
      const s = attacker.request({ ":path": "/attack", ":authority": "app" });
      s.on("error", () => {});
      s.close(http2.constants.NGHTTP2_CANCEL);
    } catch {
      break; // the proxy sent GOAWAY: no new streams
    }
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  const attackMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 200));
  process.stdout.write(JSON.stringify({ goaway, attackMs: Math.round(attackMs) }));
  attacker.destroy();
  process.exit(0);
}

const cli = process.argv[2] ?? join(here, "../../dist/cli.js");
const streams = Number(process.argv[3] ?? 20_000);

let requests = 0; // the attacker's only (the normal client asks for /normal)
let connections = 0;
const backend = http.createServer((req, res) => {
  if (req.url === "/attack") requests++;
  setTimeout(() => res.end("ok"), 5);
});
backend.on("connection", () => connections++);
await new Promise((r) => backend.listen(0, "127.0.0.1", r));
const port = await freePort();
const config = join(mkdtempSync(join(tmpdir(), "mesh-rapid-")), "proxy.json");
writeFileSync(
  config,
  JSON.stringify({
    admin: { listen: `127.0.0.1:${await freePort()}` },
    log: { level: "warn", accessLog: false },
    outbound: {
      listen: `127.0.0.1:${port}`,
      services: [
        {
          name: "app",
          protocol: "http1",
          discovery: { static: [`127.0.0.1:${backend.address().port}`] },
        },
      ],
    },
  }),
);
const proxy = spawn(process.execPath, [cli, "--config", config], { stdio: "inherit" });
await waitPort(port, proxy);
const rssMb = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.pid}/status`, "utf8"))[1]) / 1024;

const normal = http2.connect(`http://127.0.0.1:${port}`);
const get = () =>
  new Promise((resolve) => {
    const t = performance.now();
    const s = normal.request({ ":path": "/normal", ":authority": "app" });
    s.resume();
    s.on("close", () => resolve(performance.now() - t));
  });
for (let i = 0; i < 200; i++) await get();
const before = { rss: rssMb(), requests, connections };
let worst = 0;
let stop = false;
const watcher = (async () => {
  while (!stop) {
    worst = Math.max(worst, await get());
    await new Promise((r) => setTimeout(r, 20));
  }
})();

const attack = spawn(
  process.execPath,
  [fileURLToPath(import.meta.url), "--attack", String(port), String(streams)],
  { stdio: ["ignore", "pipe", "inherit"] },
);
let attackOut = "";
attack.stdout.on("data", (d) => {
  attackOut += d;
});
await new Promise((r) => attack.once("exit", r));
const { goaway, attackMs } = JSON.parse(attackOut);
// Let requests already dispatched reach the backend (or not) before counting.
await new Promise((r) => setTimeout(r, 1_500));
stop = true;
await watcher;
console.log(
  JSON.stringify({
    streams,
    goaway,
    backendRequests: requests - before.requests,
    backendConnections: connections - before.connections,
    rssMb: { before: Number(before.rss.toFixed(1)), after: Number(rssMb().toFixed(1)) },
    slowestNormalRequestMs: Number(worst.toFixed(1)),
    attackMs,
  }),
);
normal.close();
const tk = performance.now();
proxy.kill("SIGTERM");
await new Promise((r) => proxy.once("exit", r));
console.log(`exit after SIGTERM: ${Math.round(performance.now() - tk)} ms`);
backend.close();
