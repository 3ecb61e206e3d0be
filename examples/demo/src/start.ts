/**
 * The demo mesh launcher (`npm start -w @mesh/example-demo`).
 *
 *   node src/start.ts                      run until Ctrl-C, `mesh-proxy stat` every 2 s and
 *                                          `mesh-proxy dashboard` (its URL printed)
 *   node src/start.ts --once               run 10 s, print the final table + a JSON summary
 *   MESH_DEMO_DURATION=30s node src/start.ts
 *
 * Environment: MESH_DEMO_DURATION (headless run length), MESH_DEMO_RPS (default 50),
 * MESH_DEMO_MTLS (auto | on | off; auto = on when the proxy supports identity),
 * MESH_DEMO_KEEP=1 (keep configs, tokens and logs), MESH_DEMO_DASHBOARD (the dashboard's
 * address, default 127.0.0.1:50750; another port is picked when that one is taken).
 */
import { Demo } from "./demo.ts";
import { type StatJson, summarize } from "./summary.ts";

function seconds(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (m === null)
    throw new RangeError(`${what}: expected a duration such as 10s, got ${JSON.stringify(text)}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
}

function options() {
  const argv = process.argv.slice(2);
  const env = process.env;
  const at = argv.indexOf("--duration");
  let duration: number | undefined;
  if (at >= 0) duration = seconds(argv[at + 1] ?? "", "--duration");
  else if (env.MESH_DEMO_DURATION) duration = seconds(env.MESH_DEMO_DURATION, "MESH_DEMO_DURATION");
  else if (argv.includes("--once")) duration = 10;
  const mtlsEnv = env.MESH_DEMO_MTLS ?? "auto";
  const mtls = argv.includes("--no-mtls") ? "off" : argv.includes("--mtls") ? "on" : mtlsEnv;
  if (mtls !== "auto" && mtls !== "on" && mtls !== "off") {
    throw new RangeError(`MESH_DEMO_MTLS: expected auto, on or off, got ${JSON.stringify(mtls)}`);
  }
  const rps = Number(env.MESH_DEMO_RPS ?? 50);
  if (!(rps > 0))
    throw new RangeError(
      `MESH_DEMO_RPS: expected a number > 0, got ${JSON.stringify(env.MESH_DEMO_RPS)}`,
    );
  return { duration, mtls, rps, keep: env.MESH_DEMO_KEEP === "1" } as const;
}

async function main(): Promise<number> {
  const o = options();
  const demo = new Demo({ rps: o.rps, mtls: o.mtls, keep: o.keep });
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping the demo...\n`);
    void demo.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`demo: ${(err as Error).stack}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  const startedAt = performance.now();
  try {
    await demo.start();
  } catch (err) {
    process.stderr.write(`demo: failed to start: ${(err as Error).message}\n`);
    await demo.stop();
    return 1;
  }
  if (stopping) return 0;
  process.stderr.write(
    `ready: pids ${demo.children.map((c) => c.pid).join(",")} ports ${demo.ports.join(",")}\n`,
  );
  // The dashboard: MESH_DEMO_DASHBOARD picks its address (default 127.0.0.1:50750).
  const url = await demo.startDashboard(process.env.MESH_DEMO_DASHBOARD || undefined);
  process.stderr.write(`dashboard: ${url}  (open it in a browser)\n`);
  demo.watchStat(2_000);
  const duration = o.duration;
  if (duration === undefined) {
    process.stderr.write("Ctrl-C stops the demo.\n");
    return new Promise<number>(() => {}); // runs until a signal
  }
  const trafficStart = performance.now();
  await new Promise((r) => setTimeout(r, Math.max(0, duration * 1000 - 1_000)));
  if (stopping) return new Promise<number>(() => {});
  // The last second: one window for the final table and the JSON report, traffic still on.
  const [table, json] = await Promise.all([demo.stat(false), demo.stat(true)]);
  const generator = { ...(demo.traffic?.counts ?? { sent: 0, ok: 0, failed: 0, errors: 0 }) };
  const durationSeconds = (performance.now() - trafficStart) / 1000;
  stopping = true;
  await demo.stop();
  const summary = summarize(JSON.parse(json) as StatJson, {
    mtls: demo.mtls,
    durationSeconds,
    generator,
    booksRoles: demo.booksRoles,
    pids: demo.children.map((c) => c.pid),
    ports: demo.ports,
  });
  process.stdout.write(
    `\nfinal (${((performance.now() - startedAt) / 1000).toFixed(1)} s):\n${table}`,
  );
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
