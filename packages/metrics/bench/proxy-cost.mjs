// Throughput cost of @mesh/metrics on a minimal Node proxy: metrics off / hooks over
// NOOP_SIGNALS / recording into GoldenSignals, each in its own process pinned to CPU 0, with
// wrk pinned to CPU 1 (the backend shares CPU 0, as in the repository's bench harness).
// All variants run side by side and take turns, rotating each round; the report gives
// medians and, per round, each variant's ratio to that round's "off".
//
// Run from packages/metrics after `npx tsup` (needs wrk and taskset):
//   node bench/proxy-cost.mjs [--generations=3] [--rounds=4] [--duration=3] [--trace] [--prof=DIR]
// --trace: tracing left at its default (no OTel SDK registered) instead of `trace: false`.
// --baseline=FILE: also run noop/on against another build of dist/index.js (before/after).
// --variants=a,b: run "off" plus these (e.g. noop-server,noop-client,compose-only).
// --gc: also report GC pause per request (the observer itself costs a little).
// The proxy is the repository's bench peer, bench/src/peers/undici-stream.mjs.
// --prof=DIR: one extra `node --cpu-prof` run of the "on" variant, profile written to DIR.
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : a.slice(name.length + 3);
};
const generations = Number(arg("generations", 3));
const rounds = Number(arg("rounds", 4));
const duration = Number(arg("duration", 3));
const trace = process.argv.includes("--trace");
const profDir = arg("prof", undefined);
const baseline = arg("baseline", undefined);
const PEER = resolve(here, "../../../bench/src/peers/undici-stream.mjs");
const gcStats = process.argv.includes("--gc");
const only = arg("variants", undefined);
const VARIANTS = only
  ? ["off", ...only.split(",")]
  : ["off", "noop", "on", ...(baseline ? ["noop@baseline", "on@baseline"] : [])];
const CLK_TCK = 100;

function start(cpu, script, args, nodeFlags = [], env = {}) {
  const child = spawn(
    "taskset",
    ["-c", cpu, process.execPath, ...nodeFlags, resolve(here, script), ...args],
    {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...env },
    },
  );
  let out = "";
  const ready = new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { child, ready, output: () => out };
}

async function stop(p) {
  if (p.child.exitCode !== null) return;
  const exited = new Promise((r) => p.child.once("exit", r));
  p.child.kill("SIGTERM");
  await exited;
}

function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}

function wrk(url, seconds) {
  const out = execFileSync("taskset", ["-c", "1", "wrk", "-t1", "-c32", `-d${seconds}s`, url], {
    encoding: "utf8",
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)/.exec(out)?.[1];
  return { rps, requests, non2xx, errors };
}

async function startProxy(origin, variant, nodeFlags = []) {
  const [mode, build] = variant.split("@");
  const env = build === "baseline" ? { MESH_METRICS_ENTRY: resolve(baseline) } : {};
  const flags = [
    ...(mode === "off" ? [] : [`--metrics=${mode}`]),
    ...(trace ? ["--trace"] : []),
    ...(gcStats ? ["--gc"] : []),
  ];
  const p = start("0", PEER, ["0", origin, ...flags], nodeFlags, env);
  const port = await p.ready;
  p.url = `http://127.0.0.1:${port}/`;
  wrk(p.url, 2); // warm-up: JIT and connection pools
  return p;
}

function measure(p) {
  if (gcStats) p.child.kill("SIGUSR2"); // reset GC accounting
  const c0 = cpuSeconds(p.child.pid);
  const r = wrk(p.url, duration);
  const c1 = cpuSeconds(p.child.pid);
  return { ...r, cpuUsPerReq: ((c1 - c0) / r.requests) * 1e6 };
}

async function gcPerRequest(p, requests) {
  await stop(p);
  const gc = /GC (\d+) ([\d.]+)/.exec(p.output());
  return gc ? (Number(gc[2]) * 1000) / requests : Number.NaN;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const backend = start("0", "backend.mjs", []);
try {
  const origin = `http://127.0.0.1:${await backend.ready}`;
  const runs = Object.fromEntries(VARIANTS.map((v) => [v, []]));
  // All variants of a generation run side by side (idle ones cost nothing) and take short
  // turns, rotating the order each round, so drift in the machine's load spreads evenly over
  // them. Each generation starts fresh processes: a process's JIT and heap layout bias it.
  for (let g = 0; g < generations; g++) {
    const proxies = {};
    for (const v of VARIANTS) proxies[v] = await startProxy(origin, v);
    try {
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < VARIANTS.length; i++) {
          const v = VARIANTS[(i + r + g) % VARIANTS.length];
          const m = measure(proxies[v]);
          runs[v].push(m);
          console.error(
            `gen ${g + 1} round ${r + 1} ${v}: ${m.rps.toFixed(0)} rps, ${m.cpuUsPerReq.toFixed(1)} µs CPU/req` +
              (m.non2xx || m.errors ? ` (non-2xx ${m.non2xx}, errors ${m.errors ?? 0})` : ""),
          );
        }
      }
    } finally {
      for (const v of VARIANTS) {
        // GC pause of the last turn only (accounting resets at each turn's start)
        const last = runs[v].at(-1);
        if (last && gcStats) last.gcUsPerReq = await gcPerRequest(proxies[v], last.requests);
        else await stop(proxies[v]);
      }
    }
  }
  const off = median(runs.off.map((x) => x.rps));
  console.log(
    `\nNode ${process.version}, ${generations} generations × ${rounds} rounds × ${duration} s, wrk -t1 -c32, trace ${trace ? "default" : "false"}`,
  );
  const gcCol = gcStats;
  console.log(
    `| variant | median rps (min–max) | vs off | paired vs off | CPU µs/req |${gcCol ? " GC pause µs/req |" : ""}`,
  );
  console.log(`|---|---|---|---|---|${gcCol ? "---|" : ""}`);
  for (const v of VARIANTS) {
    const rps = runs[v].map((x) => x.rps);
    // paired: each turn against the "off" turn of the same round and generation
    const paired = runs[v].map((x, i) => x.rps / runs.off[i].rps);
    const gc = runs[v].filter((x) => x.gcUsPerReq !== undefined).map((x) => x.gcUsPerReq);
    console.log(
      `| ${v} | ${median(rps).toFixed(0)} (${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)}) | ` +
        `${(median(rps) / off).toFixed(3)} | ${median(paired).toFixed(3)} | ` +
        `${median(runs[v].map((x) => x.cpuUsPerReq)).toFixed(1)} |${gcCol ? ` ${median(gc).toFixed(2)} |` : ""}`,
    );
  }
  if (profDir !== undefined) {
    const p = await startProxy(origin, "on", ["--cpu-prof", `--cpu-prof-dir=${profDir}`]);
    measure(p);
    await stop(p);
    console.log(`cpu profile of "on" written to ${profDir}`);
  }
} finally {
  await stop(backend);
}
