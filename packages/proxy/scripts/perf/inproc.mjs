/**
 * Runs the proxy in-process (outbound only, one static endpoint) and prints its memory
 * breakdown every second on stderr: `node inproc.mjs <backend-port> <listen-port>`.
 */
import v8 from "node:v8";

// Runtime V8 flags (what a launcher could set without a command line), before the proxy loads.
for (const flag of (process.env.PERF_RUNTIME_FLAGS ?? "").split(" ").filter(Boolean))
  v8.setFlagsFromString(flag);
const { MeshProxy, validateConfig } = await import("../../dist/index.js");

const [backendPort, port] = process.argv.slice(2).map(Number);
const result = validateConfig({
  proxyId: "perf",
  admin: { listen: "127.0.0.1:0" },
  log: { level: "warn", accessLog: false },
  outbound: {
    listen: `127.0.0.1:${port}`,
    unknownAuthority: "deny",
    services: [
      {
        name: "backend",
        authorities: [`127.0.0.1:${port}`],
        discovery: { static: [`127.0.0.1:${backendPort}`] },
        protocol: "http1",
      },
    ],
  },
});
if (!result.ok) throw new Error(JSON.stringify(result.problems));
await MeshProxy.start({ config: result.config });
const mb = (n) => (n / 1048576).toFixed(1);
setInterval(() => {
  const u = process.memoryUsage();
  process.stderr.write(
    `rss ${mb(u.rss)} heapTotal ${mb(u.heapTotal)} heapUsed ${mb(u.heapUsed)} external ${mb(u.external)} arrayBuffers ${mb(u.arrayBuffers)}\n`,
  );
}, 1000);
