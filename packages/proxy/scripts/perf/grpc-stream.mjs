/**
 * gRPC server streaming through the sidecar pair, as the bench's `grpc` scenario measures it
 * but for A/B of builds: the bench's gRPC server (h2c) and each variant's pair (outbound →
 * mTLS h2 → inbound → h2c app) pinned on CPU 0, a closed-loop client on CPU 1 (one HTTP/2
 * connection, `--concurrency` calls of `--messages` × 64-byte messages). Per round: direct,
 * then each variant after `--warmup` seconds of the same load: messages/s, each proxy's CPU
 * µs per message (/proc/<pid>/stat), and DATA chunks per call as the client saw them.
 *
 *   node scripts/perf/grpc-stream.mjs [--rounds 2] [--seconds 5] [--warmup 3]
 *        [--variants "new,old=/path/to/old/dist/cli.js"] [--cpuprof dir]
 *
 * `--cold <s> [--rate 1000]`: instead, a fresh pair's first <s> seconds of unary calls, open loop
 * (gRPC's cold start): p50/p99/max and p99 per second, per variant and round.
 *
 * `--node-flags="…"` are given to both proxies (e.g. `--node-flags="--cpu-prof --cpu-prof-dir=/tmp/p
 * --cpu-prof-interval=500"`: a whole-life profile, written when the proxy exits).
 * `--perf <dir>` runs `perf record -g` on each proxy over the measured window (add
 * `--node-flags=--perf-basic-prof` so JavaScript frames have names; `perf report -i …`).
 * `--callgrind` counts instructions per call instead (each proxy under valgrind; `--warmup`
 * seconds uninstrumented, then `--calls` calls counted; dumps kept for callgrind_annotate).
 * Under valgrind 20 s of warm-up is not enough: TurboFan still dominates the count.
 * A variant is `name` (this package's dist/cli.js), `name=<cli path>`, or `name=nodepair` (the
 * bench's minimal Node mTLS pair, bench/src/peers/node-pair.mjs with `--h2`: Node's floor). Variants rotate
 * between rounds; medians are printed at the end. `--cpuprof <dir>` loads cpusample.mjs into
 * both proxies and profiles the measured window (summarise with top.mjs; do not read CPU
 * numbers from such a run). Under this closed-loop load its 100 µs sampling on the shared,
 * pinned CPU slows the pair ~500× (a few hundred msgs/s): prefer
 * `--node-flags="--cpu-prof --cpu-prof-dir=<dir> --cpu-prof-interval=250"` with a long
 * `--seconds`, so start-up is a small share of the whole-life profile. `--alloc <dir>` does the same with heapsample.mjs (every
 * allocation, collected objects included) and prints KB allocated per call per proxy.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:http2";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
// The pair is configured exactly as the bench harness's mesh-sidecar-pair peer (h2c app).
import {
  PAIR_INBOUND_ID,
  PAIR_OUTBOUND_ID,
  PAIR_TRUST_DOMAIN,
  pairIdentities,
  pairInboundSection,
  pairOutboundSection,
} from "../../../../bench/src/peers/mesh.ts";
import { NODE_PAIR_SCRIPT, nodePairArgs } from "../../../../bench/src/peers/node-pair-args.ts";
import { freePort, waitPort, waitReady } from "./ports.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "../../../..");
const self = fileURLToPath(import.meta.url);
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "2" },
    seconds: { type: "string", default: "5" },
    warmup: { type: "string", default: "3" },
    variants: { type: "string", default: "new" },
    concurrency: { type: "string", default: "8" },
    messages: { type: "string", default: "100" },
    cpuprof: { type: "string" },
    "node-flags": { type: "string", default: "" },
    perf: { type: "string" },
    alloc: { type: "string" },
    client: { type: "boolean", default: false },
    callgrind: { type: "boolean", default: false },
    calls: { type: "string", default: "400" },
    cold: { type: "string" },
    rate: { type: "string", default: "1000" },
  },
});

if (values.client) {
  // Child mode: `--client <origin> <ms>`; prints `RESULT {calls, msgs, chunks, failed, ms}`.
  // A negative <ms> makes exactly -<ms> calls instead of running for a time.
  const [origin, ms] = positionals;
  const concurrency = Number(values.concurrency);
  // A cold-start probe makes unary calls (one message each).
  const want = values.cold ? 1 : Number(values.messages);
  const session = connect(origin);
  session.on("error", () => {});
  const payload = Buffer.from([0, 0, 0, 0, 4, 0, 0, 0, 0]);
  payload.writeUInt32BE(want, 5);
  let calls = 0;
  let msgs = 0;
  let chunks = 0;
  let failed = 0;
  const call = () =>
    new Promise((resolve) => {
      const req = session.request({
        ":method": "POST",
        ":path": "/bench.Echo/ServerStream",
        "content-type": "application/grpc",
        te: "trailers",
      });
      let status;
      let rest = Buffer.alloc(0);
      let n = 0;
      req.on("response", (h) => {
        if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
      });
      req.on("trailers", (t) => {
        if (t["grpc-status"] !== undefined) status = Number(t["grpc-status"]);
      });
      req.on("data", (chunk) => {
        chunks++;
        let buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
        let at = 0;
        while (at + 5 <= buf.length) {
          const len = buf.readUInt32BE(at + 1);
          if (at + 5 + len > buf.length) break;
          n++;
          at += 5 + len;
        }
        buf = buf.subarray(at);
        rest = buf;
      });
      const done = (ok) => {
        msgs += n;
        if (ok && status === 0 && n === want) calls++;
        else failed++;
        resolve();
      };
      req.once("end", () => done(true));
      req.once("error", () => done(false));
      req.end(payload);
    });
  if (values.cold) {
    // Open loop at --rate calls/s for <ms>: latency from each call's scheduled start (a
    // stalled pair delays the calls behind it), summarised per second and overall.
    const rate = Number(values.rate);
    const lat = [];
    const windows = [];
    const t0 = performance.now();
    let sent = 0;
    const inflight = new Set();
    await new Promise((resolve) => {
      const tick = setInterval(() => {
        const now = performance.now();
        if (now - t0 >= Number(ms)) {
          clearInterval(tick);
          resolve();
          return;
        }
        const due = Math.floor(((now - t0) * rate) / 1000);
        for (; sent < due; sent++) {
          const at = t0 + (sent * 1000) / rate;
          const p = call().then(() => {
            const l = performance.now() - at;
            lat.push(l);
            const w = Math.floor((at - t0) / 1000);
            if (windows[w] === undefined) windows[w] = [];
            windows[w].push(l);
            inflight.delete(p);
          });
          inflight.add(p);
        }
      }, 1);
    });
    await Promise.all(inflight);
    const q = (xs, f) => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length ? s[Math.min(s.length - 1, Math.floor(f * s.length))] : Number.NaN;
    };
    const summary = {
      calls,
      failed,
      p50: q(lat, 0.5),
      p99: q(lat, 0.99),
      max: q(lat, 1),
      perSecondP99: windows.map((w) => Math.round(q(w ?? [], 0.99))),
    };
    process.stdout.write(`RESULT ${JSON.stringify(summary)}\n`);
    session.close();
    process.exit(0);
  }
  const t0 = performance.now();
  const until = t0 + Number(ms);
  let left = -Number(ms);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Number(ms) < 0 ? left-- > 0 : performance.now() < until) await call();
    }),
  );
  const elapsed = performance.now() - t0;
  process.stdout.write(`RESULT ${JSON.stringify({ calls, msgs, chunks, failed, ms: elapsed })}\n`);
  session.close();
  process.exit(0);
}

const node = process.execPath;
const tmp = mkdtempSync(join(tmpdir(), "mesh-grpc-stream-"));
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
/** `node args` under `wrapper` (e.g. valgrind), pinned on CPU 0. */
function startWrapped(wrapper, args, env) {
  const child = spawn("taskset", ["-c", "0", ...wrapper, node, ...args], {
    stdio: ["ignore", "ignore", "ignore"],
    env: { ...process.env, ...env },
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return { child, done: new Promise((r) => child.on("exit", (code) => r(code))) };
}
const stop = async (p) => {
  if (p.child.exitCode !== null) return;
  p.child.kill("SIGTERM");
  await p.done;
};
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** utime+stime seconds of a process (taskset execs node in place, so the pid is node's). */
function cpuOf(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICK;
}

async function stream(origin, ms, extra = []) {
  const c = start("1", [
    self,
    "--client",
    ...extra,
    "--concurrency",
    values.concurrency,
    "--messages",
    values.messages,
    "--",
    origin,
    String(ms),
  ]);
  await c.done;
  const line = c
    .out()
    .split("\n")
    .find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`client: ${c.out()} ${c.err()}`);
  return JSON.parse(line.slice(7));
}

async function startPair(ids, app, variant, wrap = []) {
  const outPort = await freePort();
  const inPort = await freePort();
  const flags = values["node-flags"].split(" ").filter(Boolean);
  if (values.cpuprof) flags.unshift("--import", join(here, "cpusample.mjs"));
  if (values.alloc) flags.unshift("--import", join(here, "heapsample.mjs"));
  const env = { MESH_CPUSAMPLE_DIR: values.cpuprof ?? "", MESH_HEAPSAMPLE_DIR: values.alloc ?? "" };
  const spawnProxy = (name, args) =>
    wrap.length
      ? startWrapped(wrap(name), [...flags, ...args], env)
      : start("0", [...flags, ...args], env);
  if (variant.cli === "nodepair") {
    // The bench's minimal Node mTLS pair in its gRPC mode (h2c both ends): Node's floor.
    const appOrigin = `http://127.0.0.1:${app}`;
    const args = nodePairArgs({ ids, inPort, outPort, appOrigin, h2: true });
    const pin = spawnProxy("in", [NODE_PAIR_SCRIPT, ...args.inbound]);
    await waitPort(inPort, pin.child);
    const pout = spawnProxy("out", [NODE_PAIR_SCRIPT, ...args.outbound]);
    await waitPort(outPort, pout.child);
    return { url: `http://127.0.0.1:${outPort}`, out: pout, in: pin };
  }
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
    inbound: pairInboundSection(inPort, app, "h2c"),
  });
  const outbound = cfg("outbound", {
    proxyId: "bench-outbound",
    admin: { listen: `127.0.0.1:${outAdmin}` },
    log: { level: "warn", accessLog: false },
    identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_OUTBOUND_ID, files: ids.outbound },
    outbound: pairOutboundSection(outPort, inPort, PAIR_INBOUND_ID),
  });
  const run = (name, config) => spawnProxy(name, [variant.cli, "--config", config]);
  const pin = run("in", inbound);
  await waitPort(inPort, pin.child);
  const pout = run("out", outbound);
  await waitPort(outPort, pout.child);
  // Traffic starts once both are ready (after their warm-up), as Kubernetes would send it.
  if (!wrap.length) await Promise.all([waitReady(inAdmin), waitReady(outAdmin)]);
  return { url: `http://127.0.0.1:${outPort}`, out: pout, in: pin };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN;
};
const variants = values.variants.split(",").map((spec) => {
  const eq = spec.indexOf("=");
  return eq < 0
    ? { name: spec, cli: join(here, "../../dist/cli.js") }
    : { name: spec.slice(0, eq), cli: spec.slice(eq + 1) };
});
const ms = Number(values.seconds) * 1000;
const ids = await pairIdentities(tmp);
const app = await freePort();
const server = start("0", [join(repo, "bench/src/peers/grpc-server.ts"), String(app)]);
while (!/READY/.test(server.out())) {
  if (server.child.exitCode !== null) throw new Error(`grpc server: ${server.err()}`);
  await new Promise((r) => setTimeout(r, 20));
}
if (values.callgrind) {
  // Instructions per call, counted by callgrind: repeatable where timing on a shared machine
  // is not. Warm-up (`--warmup` seconds of load, uninstrumented) then `--calls` calls counted.
  const { execFileSync } = await import("node:child_process");
  const { readdirSync } = await import("node:fs");
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const v of variants) {
      const tag = `${v.name}-${round}`;
      const wrap = (k) => [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        `--callgrind-out-file=${join(tmp, `${tag}-${k}.%p.callgrind`)}`,
      ];
      const pair = await startPair(ids, app, v, wrap);
      await stream(pair.url, Number(values.warmup) * 1000);
      const procs = { out: pair.out.child.pid, in: pair.in.child.pid };
      for (const pid of Object.values(procs))
        execFileSync("callgrind_control", ["-i=on", String(pid)]);
      const r = await stream(pair.url, -Number(values.calls));
      const per = {};
      for (const pid of Object.values(procs)) {
        execFileSync("callgrind_control", ["-i=off", String(pid)]);
        execFileSync("callgrind_control", ["-d", String(pid)]);
      }
      await stop(pair.out);
      await stop(pair.in);
      for (const [k, pid] of Object.entries(procs)) {
        let total = 0;
        for (const f of readdirSync(tmp).filter((f) => f.includes(`.${pid}.callgrind`))) {
          const m = /^totals: (\d+)/m.exec(readFileSync(join(tmp, f), "utf8"));
          if (m) total += Number(m[1]);
        }
        per[k] = total / (r.calls + r.failed);
      }
      process.stdout.write(
        `${v.name} round ${round + 1}: out ${(per.out / 1000).toFixed(0)}k in ${(per.in / 1000).toFixed(0)}k instructions/call (${r.calls} calls, ${(r.chunks / (r.calls + r.failed)).toFixed(1)} chunks/call, failed ${r.failed}); dumps in ${tmp}\n`,
      );
    }
  }
  await stop(server);
  process.exit(0);
}
if (values.cold) {
  // A fresh pair's first --cold seconds of unary calls at --rate calls/s (open loop), traffic
  // starting as soon as both proxies listen: gRPC's cold start, as the bench's grpc scenario
  // measures it (its p99 of the first 20 s).
  for (let round = 0; round < Number(values.rounds); round++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + round) % variants.length];
      const pair = await startPair(ids, app, v);
      const r = await stream(pair.url, Number(values.cold) * 1000, [
        "--cold",
        values.cold,
        "--rate",
        values.rate,
      ]);
      const rss = (p) =>
        Math.round(
          Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.child.pid}/status`, "utf8"))?.[1]) /
            1024,
        );
      process.stdout.write(
        `round ${round + 1} ${v.name}: ${r.calls} calls, failed ${r.failed}, p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} max ${r.max.toFixed(1)} ms; RSS out ${rss(pair.out)} in ${rss(pair.in)} MB; p99 per second: ${r.perSecondP99.join(" ")}\n`,
      );
      await stop(pair.out);
      await stop(pair.in);
    }
  }
  await stop(server);
  process.exit(0);
}
const results = {};
const fmt = (r) =>
  `${Math.round(r.rate)} msgs/s, ${r.chunksPerCall.toFixed(1)} chunks/call, failed ${r.failed}`;
for (let round = 0; round < Number(values.rounds); round++) {
  await stream(`http://127.0.0.1:${app}`, 1000);
  const d = await stream(`http://127.0.0.1:${app}`, ms);
  const direct = {
    rate: (d.msgs / d.ms) * 1000,
    chunksPerCall: d.chunks / (d.calls + d.failed),
    failed: d.failed,
  };
  results.direct = [...(results.direct ?? []), direct];
  process.stdout.write(`round ${round + 1} direct: ${fmt(direct)}\n`);
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(i + round) % variants.length];
    const pair = await startPair(ids, app, v);
    await stream(pair.url, Number(values.warmup) * 1000);
    const pids = { out: pair.out.child.pid, in: pair.in.child.pid };
    const sampling = values.cpuprof || values.alloc;
    if (sampling) for (const p of Object.values(pids)) process.kill(p, "SIGUSR2");
    const c0 = { out: cpuOf(pids.out), in: cpuOf(pids.in) };
    const perfs = values.perf
      ? Object.entries(pids).map(([k, pid]) =>
          spawn(
            "perf",
            [
              "record",
              "-q",
              "-F",
              "1999",
              "-g",
              "-p",
              String(pid),
              "-o",
              join(values.perf, `${v.name}-${round}-${k}.data`),
              "--",
              "sleep",
              String(ms / 1000 - 0.5),
            ],
            { stdio: "ignore" },
          ),
        )
      : [];
    const r = await stream(pair.url, ms);
    await Promise.all(
      perfs.map((p) => new Promise((res) => (p.exitCode !== null ? res() : p.on("exit", res)))),
    );
    const c1 = { out: cpuOf(pids.out), in: cpuOf(pids.in) };
    if (sampling) {
      for (const p of Object.values(pids)) process.kill(p, "SIGUSR2");
      await new Promise((res) => setTimeout(res, 1500));
      process.stdout.write(`  profiles: ${sampling}/{${pids.out},${pids.in}}-* (out, in)\n`);
    }
    if (values.alloc)
      for (const [k, pid] of Object.entries(pids)) {
        const f = join(values.alloc, `${pid}-0.json`);
        for (let i = 0; i < 100 && !existsSync(f); i++)
          await new Promise((res) => setTimeout(res, 200));
        const { totalBytes } = JSON.parse(readFileSync(f, "utf8"));
        process.stdout.write(
          `  alloc ${k}: ${(totalBytes / (r.calls + r.failed) / 1024).toFixed(2)} KB/call\n`,
        );
      }
    const row = {
      rate: (r.msgs / r.ms) * 1000,
      chunksPerCall: r.chunks / (r.calls + r.failed),
      failed: r.failed,
      outUs: ((c1.out - c0.out) / r.msgs) * 1e6,
      inUs: ((c1.in - c0.in) / r.msgs) * 1e6,
    };
    results[v.name] = [...(results[v.name] ?? []), row];
    process.stdout.write(
      `round ${round + 1} ${v.name}: ${fmt(row)} | ${(row.rate / direct.rate).toFixed(2)}× direct | out ${row.outUs.toFixed(2)} in ${row.inUs.toFixed(2)} µs/msg\n`,
    );
    await stop(pair.out);
    await stop(pair.in);
  }
}
await stop(server);
process.stdout.write("medians:\n");
for (const [name, rows] of Object.entries(results)) {
  const m = (k) => median(rows.map((x) => x[k]));
  process.stdout.write(
    `  ${name}: ${Math.round(m("rate"))} msgs/s (${(m("rate") / median(results.direct.map((x) => x.rate))).toFixed(2)}× direct), ${m("chunksPerCall").toFixed(1)} chunks/call${name === "direct" ? "" : `, out ${m("outUs").toFixed(2)} in ${m("inUs").toFixed(2)} µs/msg`}\n`,
  );
}
process.exit(0);
