// The gateway process: reads its environment, starts demo upstreams when UPSTREAMS is not
// set, listens, logs JSON lines, and shuts down gracefully on SIGTERM/SIGINT.
import { loadConfig } from "./config.ts";
import { type DemoUpstreams, startDemoUpstreams } from "./demo-upstreams.ts";
import { createGateway, listen } from "./gateway.ts";

function log(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  log({ msg: "invalid configuration", error: (err as Error).message });
  process.exit(2);
}

let demo: DemoUpstreams | undefined;
let upstreams = config.upstreams;
if (upstreams === undefined) {
  demo = await startDemoUpstreams(3);
  upstreams = demo.addresses;
  log({ msg: "demo upstreams started", upstreams });
}

const gateway = createGateway({
  upstreams,
  requestTimeoutMs: config.requestTimeoutMs,
  perTryTimeoutMs: config.perTryTimeoutMs,
  onUpstreamError: (info) => log({ msg: "upstream error", ...info }),
});
const port = await listen(gateway.server, config.port, config.host);
log({ msg: "listening", port, host: config.host, upstreams });

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Stop accepting; idle keep-alive connections close now, busy ones after their response.
  // The listener is closed synchronously, so once this line is out, connections are refused.
  const stopped = gateway.shutdown(config.shutdownGraceMs, () =>
    log({ msg: "grace period over, closing connections", graceMs: config.shutdownGraceMs }),
  );
  log({ msg: "shutting down", signal });
  await stopped;
  await demo?.close();
  log({ msg: "stopped" });
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    shutdown(signal).catch((err: unknown) => {
      log({ msg: "shutdown failed", error: String(err) });
      process.exitCode = 1;
    });
  });
}
