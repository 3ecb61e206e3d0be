/**
 * The sidecar pair at a fixed rate, as bench/src/scenarios/overhead.ts runs it but for this
 * one peer: a node:http "ok" backend and both proxies (outbound → mTLS h2 → inbound) pinned
 * on CPU 0, the bench's open-loop load worker (16 connections, CO-corrected) on CPU 1.
 * Per round: direct p50/p99, then the pair after 2 s warm-up: p50/p99 and each proxy's CPU
 * µs per request (warm-up of the generator included, as the harness counts), plus each
 * proxy's per-thread CPU split (main thread, V8 workers, libuv pool, other).
 *
 *   node scripts/perf/pair.mjs [--rounds 3] [--rate 1000] [--seconds 6]
 *        [--variants "base,maglev=--maglev"] [--cli dist/cli.js] [--max] [--dump dir]
 *        [--warmup <s at 1000 rps before measuring, default 2; the bench's overhead uses 20>]
 *
 * A variant is `name` or `name=node flags` (space separated); the token `raw` in the flags
 * sets MESH_V8_DEFAULTS=0, a token `env:K=V` sets an environment variable, `prewarm:<s>` runs
 * closed-loop max load for <s> seconds after the 2 s warm-up (a warmer JIT), `cli:<path>` runs
 * another build (e.g. a copy of the previous dist/) for an A/B, `timeout:<ms>` gives the
 * outbound's service a `timeout.request` (the deadline path), `nodepair` runs the bench's
 * minimal Node mTLS pair (bench/src/peers/node-pair.mjs, Node's floor) instead, `h1hop` gives the
 * outbound `meshHttp1: http1` (the HTTP/1.1 hop between the proxies), `nginxpair` runs the bench's
 * nginx mTLS pair (C's cost; with `--rate` it can load CPU 0 as a Node pair does). Variants rotate
 * between rounds; medians are printed at the end. `--dump` writes each proxy's output
 * (e.g. of `--trace-gc`); `--windows <n>` measures n consecutive windows (the warm-up curve) to `<dir>/<variant>-<round>-<out|in>.log`; `--hold <s>` keeps the
 * pair up after a round (printing its URL and pids) for strace/perf. `--alloc <dir>` loads
 * heapsample.mjs into both proxies and samples every allocation (collected objects
 * included) over the last measured window: prints KB allocated per request per proxy and
 * writes the profiles to <dir> (the profiler costs CPU: do not read CPU numbers from such a run);
 * with the token `env:MESH_HEAPSAMPLE_PROMOTED=1` it counts only what survives the young
 * generation (KB promoted to old space per request: what drives mark-compacts).
 * `--connections <n>` (default 16): the load generator's connections to the outbound.
 * `--cold <s>` replaces the warm-up with cold-probe.mjs: the fresh pair's first <s> seconds at
 * 1000 rps, latency per 250 ms bucket (where the cold-start p99 comes from).
 * `--cpuprof <dir>` loads cpusample.mjs the same way and writes a CPU profile of each proxy
 * over the last measured window, or with `--max` over the closed-loop phase (summarise with top.mjs).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ProcessManager } from "../../../../bench/src/lib/proc.ts";
// The pair is configured exactly as the bench harness's mesh-sidecar-pair peer.
import {
  PAIR_INBOUND_ID,
  PAIR_OUTBOUND_ID,
  PAIR_TRUST_DOMAIN,
  pairIdentities,
  pairInboundSection,
  pairOutboundSection,
} from "../../../../bench/src/peers/mesh.ts";
import { NODE_PAIR_SCRIPT, nodePairArgs } from "../../../../bench/src/peers/node-pair-args.ts";
import { startNginxPair } from "../../../../bench/src/peers/pairs.ts";
import { freePort, waitPort, waitReady } from "./ports.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "../../../..");
const WORKER = join(repo, "bench/src/load/worker.ts");
const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    rate: { type: "string", default: "1000" },
    seconds: { type: "string", default: "6" },
    variants: { type: "string", default: "base" },
    cli: { type: "string", default: join(here, "../../dist/cli.js") },
    max: { type: "boolean", default: false },
    hold: { type: "string", default: "0" },
    dump: { type: "string" },
    windows: { type: "string", default: "1" },
    alloc: { type: "string" },
    warmup: { type: "string", default: "2" },
    cpuprof: { type: "string" },
    cold: { type: "string" },
    connections: { type: "string", default: "16" },
  },
});
const node = process.execPath;
const tmp = mkdtempSync(join(tmpdir(), "mesh-pair-"));
const children = new Set();
const TICK = 100;

function start(cpu, args, env = {}) {
  const child = spawn("taskset", ["-c", cpu, node, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  children.add(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  child.stderr.on("data", (d) => {
    err += d;
  });
  child.on("exit", () => children.delete(child));
  return {
    child,
    out: () => out,
    err: () => err,
    done: new Promise((r) => child.on("exit", (code) => r(code))),
  };
}
const stop = async (p) => {
  if (p.child.exitCode !== null) return;
  p.child.kill("SIGTERM");
  await p.done;
};
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** utime+stime seconds of a process, and per thread grouped by name. */
function cpuOf(pid) {
  const parse = (path) => {
    const s = readFileSync(path, "utf8");
    const name = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")"));
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { name, sec: (Number(f[11]) + Number(f[12])) / TICK, sys: Number(f[12]) / TICK };
  };
  const proc = parse(`/proc/${pid}/stat`);
  const total = proc.sec;
  // Read- and write-class syscalls (read/recv*, write/writev/send*) the process made.
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const rw = Number(/syscr: (\d+)/.exec(io)[1]) + Number(/syscw: (\d+)/.exec(io)[1]);
  const threads = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const t = parse(`/proc/${pid}/task/${tid}/stat`);
      const group =
        Number(tid) === pid
          ? "main"
          : /^V8 |DelayedTask|V8Worker/.test(t.name)
            ? "v8"
            : /libuv/.test(t.name)
              ? "uv"
              : t.name;
      threads[group] = (threads[group] ?? 0) + t.sec;
    } catch {}
  }
  return { total, sys: proc.sys, rw, threads };
}

async function load(url, rate, ms, warmupMs) {
  const job = {
    mode: "open",
    client: { kind: "pool", origin: new URL(url).origin, connections: Number(values.connections) },
    path: "/",
    rate,
    durationMs: ms,
    warmupMs,
    drainTimeoutMs: 5000,
  };
  return runWorker(job);
}
/** Runs one bench load-worker job on CPU 1 and returns its RESULT. */
async function runWorker(job) {
  const w = start("1", [WORKER, JSON.stringify(job)]);
  await w.done;
  const line = w
    .out()
    .split("\n")
    .find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`load worker: ${w.out()} ${w.err()}`);
  return JSON.parse(line.slice(7));
}
async function closed(url, ms) {
  const job = {
    mode: "closed",
    client: { kind: "pool", origin: new URL(url).origin, connections: 32 },
    path: "/",
    concurrency: 32,
    durationMs: ms,
  };
  return runWorker(job);
}

function parseVariant(spec) {
  const eq = spec.indexOf("=");
  const name = eq < 0 ? spec : spec.slice(0, eq);
  const tokens =
    eq < 0
      ? []
      : spec
          .slice(eq + 1)
          .split(" ")
          .filter(Boolean);
  const env = {};
  const flags = [];
  let prewarm = 0;
  let cli = values.cli;
  let nodePair = false;
  let h1hop = false;
  let nginxPair = false;
  let timeoutMs;
  for (const t of tokens) {
    if (t === "raw") env.MESH_V8_DEFAULTS = "0";
    else if (t === "nodepair") nodePair = true;
    else if (t === "h1hop") h1hop = true;
    else if (t === "nginxpair") nginxPair = true;
    else if (t.startsWith("timeout:")) timeoutMs = Number(t.slice(8));
    else if (t.startsWith("prewarm:")) prewarm = Number(t.slice(8));
    else if (t.startsWith("cli:")) cli = t.slice(4);
    else if (t.startsWith("env:")) {
      const [k, v] = t.slice(4).split("=");
      env[k] = v;
    } else flags.push(t);
  }
  if (values.alloc) {
    flags.unshift("--import", join(here, "heapsample.mjs"));
    env.MESH_HEAPSAMPLE_DIR = values.alloc;
  }
  if (values.cpuprof) {
    flags.unshift("--import", join(here, "cpusample.mjs"));
    env.MESH_CPUSAMPLE_DIR = values.cpuprof;
  }
  return { name, env, flags, prewarm, cli, nodePair, nginxPair, timeoutMs, h1hop };
}

/** The outbound section with `timeout.request` on its service (variant token `timeout:<ms>`). */
function withTimeout(section, ms) {
  if (ms === undefined) return section;
  return {
    ...section,
    services: section.services.map((s) => ({ ...s, timeout: { request: `${ms}ms` } })),
  };
}

/** The bench's minimal Node mTLS pair (Node's floor) with the same certificates. */
async function startNodePair(ids, upstream, variant) {
  const outPort = await freePort();
  const inPort = await freePort();
  const appOrigin = `http://127.0.0.1:${upstream}`;
  const args = nodePairArgs({ ids, inPort, outPort, appOrigin, h2: false });
  const pin = start("0", [...variant.flags, NODE_PAIR_SCRIPT, ...args.inbound], variant.env);
  await waitPort(inPort);
  const pout = start("0", [...variant.flags, NODE_PAIR_SCRIPT, ...args.outbound], variant.env);
  await waitPort(outPort);
  return { url: `http://127.0.0.1:${outPort}/`, procs: { out: pout, in: pin } };
}

/**
 * The bench's nginx mTLS pair (one worker each, its own certificates), pinned like the others:
 * C's cost for the same hop, e.g. at a rate where it loads CPU 0 as much as a Node pair does.
 */
async function startNginx(variant) {
  if (variant.flags.length > 0) throw new Error("nginxpair takes no node flags");
  const pm = new ProcessManager();
  const ctx = {
    pm,
    quick: false,
    rounds: 1,
    install: false,
    resultsDir: tmp,
    tmpDir: tmp,
    pinning: { peer: "0", load: "1", describe: "" },
    tools: new Map(),
    log: () => {},
  };
  const peer = await startNginxPair(ctx, upstream, "http1");
  // Shaped as start()'s processes for the round's CPU, RSS and stop code.
  const wrap = (p) => ({
    child: { pid: p.pid, exitCode: null, kill: () => pm.stop(p) },
    done: p.exited,
    out: () => p.stdout(),
    err: () => p.stderr(),
  });
  return { url: peer.url, procs: { out: wrap(peer.procs[0]), in: wrap(peer.procs[1]) } };
}

async function startPair(ids, upstream, variant) {
  if (variant.nodePair) return startNodePair(ids, upstream, variant);
  if (variant.nginxPair) return startNginx(variant);
  const outPort = await freePort();
  const inPort = await freePort();
  const cfg = (name, obj) => {
    const f = join(tmp, `${name}.json`);
    writeFileSync(f, JSON.stringify(obj));
    return f;
  };
  const inAdmin = await freePort();
  const outAdmin = await freePort();
  const inbound = cfg("inbound", {
    proxyId: "bench-inbound",
    admin: { listen: `127.0.0.1:${inAdmin}` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_INBOUND_ID, files: ids.inbound },
    inbound: pairInboundSection(inPort, upstream, "http1"),
  });
  const outbound = cfg("outbound", {
    proxyId: "bench-outbound",
    admin: { listen: `127.0.0.1:${outAdmin}` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_OUTBOUND_ID, files: ids.outbound },
    outbound: {
      ...withTimeout(pairOutboundSection(outPort, inPort, PAIR_INBOUND_ID), variant.timeoutMs),
      ...(variant.h1hop ? { meshHttp1: "http1" } : {}),
    },
  });
  const pin = start("0", [...variant.flags, variant.cli, "--config", inbound], variant.env);
  await waitPort(inPort);
  const pout = start("0", [...variant.flags, variant.cli, "--config", outbound], variant.env);
  await waitPort(outPort);
  // Traffic starts when both are ready (after their warm-up), as in a cluster.
  await Promise.all([waitReady(inAdmin), waitReady(outAdmin)]);
  return { url: `http://127.0.0.1:${outPort}/`, procs: { out: pout, in: pin } };
}

/** Starts or stops heapsample.mjs's profiler in both proxies. */
function sampleToggle(pids) {
  if (!values.alloc && !values.cpuprof) return;
  process.kill(pids.out, "SIGUSR2");
  process.kill(pids.in, "SIGUSR2");
}
/** Stops sampling and reads each proxy's allocated bytes per request over `n` requests. */
async function sampled(pids, n) {
  const seen = new Set(readdirSync(values.alloc));
  sampleToggle(pids);
  const read = async (pid) => {
    for (let i = 0; i < 200; i++) {
      const f = readdirSync(values.alloc).find(
        (x) => x.startsWith(`${pid}-`) && x.endsWith(".json") && !seen.has(x),
      );
      if (f) return JSON.parse(readFileSync(join(values.alloc, f), "utf8")).totalBytes;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no heap profile from ${pid}`);
  };
  return { kbOut: (await read(pids.out)) / n / 1024, kbIn: (await read(pids.in)) / n / 1024 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN;
};
const rss = (pid) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;

const rate = Number(values.rate);
const seconds = Number(values.seconds);
const variants = values.variants.split(",").map(parseVariant);
const ids = await pairIdentities(tmp);
const backend = start("0", [join(here, "backend.mjs"), "0"]);
while (!/READY (\d+)/.test(backend.out())) await new Promise((r) => setTimeout(r, 20));
const upstream = Number(/READY (\d+)/.exec(backend.out())[1]);
const results = {};
for (let round = 0; round < Number(values.rounds); round++) {
  const direct = await load(`http://127.0.0.1:${upstream}/`, rate, seconds * 1000, 1000);
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(i + round) % variants.length];
    const pair = await startPair(ids, upstream, v);
    if (values.cold) {
      // The fresh pair's first requests, per 250 ms, instead of the warm-up.
      const probe = start("1", [join(here, "cold-probe.mjs"), pair.url, "1000", values.cold]);
      await probe.done;
      process.stdout.write(`  cold ${v.name}:\n${probe.out()}${probe.err()}`);
    } else await load(pair.url, 1000, Number(values.warmup) * 1000, 0);
    if (v.prewarm > 0) await closed(pair.url, v.prewarm * 1000);
    const pids = { out: pair.procs.out.child.pid, in: pair.procs.in.child.pid };
    // taskset execs node in place, so the pid is node's.
    let c0 = { out: cpuOf(pids.out), in: cpuOf(pids.in) };
    if (Number(values.windows) === 1 && !(values.cpuprof && values.max)) sampleToggle(pids);
    let r = await load(pair.url, rate, seconds * 1000, 1000);
    let c1 = { out: cpuOf(pids.out), in: cpuOf(pids.in) };
    // Earlier windows show the warm-up curve; the last one is the round's result.
    for (let w = 1; w < Number(values.windows); w++) {
      const n = r.completed + r.warmupCompleted;
      process.stdout.write(
        `  window ${w}: p99 ${r.latencyMs.p99} out ${(((c1.out.total - c0.out.total) / n) * 1e6).toFixed(0)} in ${(((c1.in.total - c0.in.total) / n) * 1e6).toFixed(0)} µs/req\n`,
      );
      c0 = c1;
      if (w === Number(values.windows) - 1 && !(values.cpuprof && values.max)) sampleToggle(pids);
      r = await load(pair.url, rate, seconds * 1000, 1000);
      c1 = { out: cpuOf(pids.out), in: cpuOf(pids.in) };
    }
    const n = r.completed + r.warmupCompleted;
    const alloc = values.alloc ? await sampled(pids, n) : undefined;
    // With --max, the CPU profile covers the closed-loop phase instead.
    if (values.cpuprof && !values.max) {
      sampleToggle(pids);
      process.stdout.write(
        `  cpu profiles of the last window: ${values.cpuprof}/{${pids.out},${pids.in}}-*.cpuprofile (out, in)\n`,
      );
    }
    const per = (k) => ((c1[k].total - c0[k].total) / n) * 1e6;
    const split = (k) =>
      Object.fromEntries(
        Object.keys(c1[k].threads).map((t) => [
          t,
          Math.round((((c1[k].threads[t] ?? 0) - (c0[k].threads[t] ?? 0)) / n) * 1e6),
        ]),
      );
    const sysUs = (k) => ((c1[k].sys - c0[k].sys) / n) * 1e6;
    const rwPer = (k) => (c1[k].rw - c0[k].rw) / n;
    const kernel = `sys out ${sysUs("out").toFixed(0)} in ${sysUs("in").toFixed(0)} µs/req, read+write syscalls out ${rwPer("out").toFixed(1)} in ${rwPer("in").toFixed(1)}/req`;
    const row = {
      p50: r.latencyMs.p50,
      p99: r.latencyMs.p99,
      addedP99: r.latencyMs.p99 - direct.latencyMs.p99,
      outUs: per("out"),
      inUs: per("in"),
      rssOut: rss(pids.out),
      rssIn: rss(pids.in),
      failed: r.non2xx + r.errors + r.timedOut,
      ...(alloc ?? {}),
    };
    if (values.max) {
      const m0 = { out: cpuOf(pids.out).total, in: cpuOf(pids.in).total };
      if (values.cpuprof) sampleToggle(pids);
      const m = await closed(pair.url, 5000);
      if (values.cpuprof) {
        sampleToggle(pids);
        process.stdout.write(
          `  cpu profiles at max: ${values.cpuprof}/{${pids.out},${pids.in}}-*.cpuprofile (out, in)\n`,
        );
      }
      row.maxRps = m.requests / (m.elapsedMs / 1000) || m.rps;
      row.maxOutUs = ((cpuOf(pids.out).total - m0.out) / m.requests) * 1e6;
      row.maxInUs = ((cpuOf(pids.in).total - m0.in) / m.requests) * 1e6;
    }
    if (Number(values.hold) > 0) {
      process.stdout.write(`HOLD ${pair.url} out=${pids.out} in=${pids.in}\n`);
      await new Promise((r) => setTimeout(r, Number(values.hold) * 1000));
    }
    results[v.name] = [...(results[v.name] ?? []), row];
    process.stdout.write(
      `round ${round + 1} ${v.name}: direct p99 ${direct.latencyMs.p99} | pair p50 ${row.p50} p99 ${row.p99} (+${row.addedP99.toFixed(2)}) | out ${row.outUs.toFixed(0)} µs/req ${JSON.stringify(split("out"))} | in ${row.inUs.toFixed(0)} µs/req ${JSON.stringify(split("in"))} | ${kernel} | rss ${row.rssOut.toFixed(0)}+${row.rssIn.toFixed(0)} MB${values.max ? ` | max ${row.maxRps?.toFixed(0)} rps out ${row.maxOutUs?.toFixed(0)} in ${row.maxInUs?.toFixed(0)} µs/req` : ""}${alloc ? ` | alloc out ${alloc.kbOut.toFixed(2)} in ${alloc.kbIn.toFixed(2)} KB/req` : ""} failed ${row.failed}\n`,
    );
    await stop(pair.procs.out);
    await stop(pair.procs.in);
    if (values.dump)
      for (const k of ["out", "in"])
        writeFileSync(
          join(values.dump, `${v.name}-${round}-${k}.log`),
          pair.procs[k].out() + pair.procs[k].err(),
        );
  }
}
await stop(backend);
for (const [name, rows] of Object.entries(results)) {
  const f = (k, d = 0) => {
    const xs = rows.map((r) => r[k]).filter((x) => x !== undefined);
    return `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
  };
  process.stdout.write(
    `${name}: p99 added ${f("addedP99", 2)} ms, p50 ${f("p50", 2)}, out ${f("outUs")} µs/req, in ${f("inUs")} µs/req, rss ${f("rssOut")}+${f("rssIn")} MB${values.alloc ? `, alloc out ${f("kbOut", 2)} in ${f("kbIn", 2)} KB/req` : ""}${values.max ? `, max ${f("maxRps")} rps, out ${f("maxOutUs")} in ${f("maxInUs")} µs/req` : ""}\n`,
  );
}
