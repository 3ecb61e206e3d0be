/**
 * Repeatable single-hop measurement: a node:http "ok" backend, then each target in turn
 * (the @mesh proxy outbound-only, the undici Pool.stream floor, optionally nginx) pinned
 * on CPU 0 with load from CPU 1. Per target and round: RSS idle (1 s after start), peak
 * RSS under 1000 rps open loop (5 s), then `wrk -t1 -c32` (1 s warm-up + 5 s): req/s and
 * CPU µs per request of the target process from /proc/<pid>/stat. Targets rotate between
 * rounds; medians are printed with ratios to the floor and nginx.
 *
 *   node scripts/perf/run.mjs [--rounds 3] [--targets mesh,floor,nginx] [--seconds 5]
 *        [--mesh-flags "--max-semi-space-size=16"] [--cli path/to/cli.js] [--label x]
 *
 * A target may be `name=node-flags` (e.g. `mesh16=--max-semi-space-size=16`) to run the
 * proxy with other V8 flags, or `before` for a second CLI given by `--before-cli`. Tokens in
 * the flags: `raw` starts the proxy without the launcher's V8 defaults (`MESH_V8_DEFAULTS=0`),
 * `rt:<flag>` applies <flag> at run time before the proxy loads (as the launcher does, through
 * runtime-flags.mjs), `alt` runs the target with `--alt-node` (e.g. Node 20) and `--alt-cli`
 * (a build that runs there), `u7` makes the floor load undici 7. Targets named `floor…` run bench/src/peers/undici-stream.mjs (`FLOOR_UNDICI` env picks
 * the undici package). `--warmup` seconds at 1000 rps precede the measured 1000 rps window.
 * Targets named `image…` run the proxy as the container image does: the bundle
 * (`--image-cli`, default dist/bundle/mesh-proxy.mjs from `node image/bundle.mjs`) with
 * NODE_OPTIONS taken from the Dockerfile's `ENV NODE_OPTIONS=…` line (same node binary, no
 * container needed). A token `imageenv` gives any other target that NODE_OPTIONS too.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort, waitPort } from "./ports.mjs";

const here = dirname(fileURLToPath(import.meta.url));
/** The floor is the repository's one pass-through, the bench peer. */
const FLOOR = join(here, "../../../../bench/src/peers/undici-stream.mjs");
const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    targets: { type: "string", default: "mesh,floor" },
    seconds: { type: "string", default: "5" },
    cli: { type: "string", default: join(here, "../../dist/cli.js") },
    "before-cli": { type: "string" },
    "rate-seconds": { type: "string", default: "5" },
    warmup: { type: "string", default: "0" },
    "idle-ms": { type: "string", default: "1000" },
    json: { type: "string" },
    "alt-node": { type: "string", default: "/usr/bin/node" },
    "alt-cli": { type: "string" },
    "floor-undici": { type: "string", default: "undici" },
    "no-rate": { type: "boolean", default: false },
    "cpu-prof": { type: "boolean", default: false },
    "image-cli": { type: "string", default: join(here, "../../dist/bundle/mesh-proxy.mjs") },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const node = process.execPath;
const tmp = mkdtempSync(join(tmpdir(), "mesh-perf-"));
const children = new Set();
const TICK = 100; // clock ticks per second (getconf CLK_TCK)

function start(name, cmd, args, opts = {}) {
  const child = spawn("taskset", ["-c", "0", cmd, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  child.stderr.on("data", (d) => {
    out += d;
  });
  child.output = () => out;
  child.label = name;
  return child;
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", resolve);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3000).unref();
  });
}

const cleanup = () => {
  for (const c of children) c.kill("SIGKILL");
};
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

function readyLine(child) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = /READY (\d+)/.exec(child.output());
      if (m) resolve(Number(m[1]));
    };
    child.stdout.on("data", check);
    child.once("exit", (code) =>
      reject(new Error(`${child.label} exited ${code}: ${child.output()}`)),
    );
    check();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime
}

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function sampleRss(pid) {
  let max = rssMb(pid);
  const t = setInterval(() => {
    try {
      max = Math.max(max, rssMb(pid));
    } catch {}
  }, 100);
  return () => {
    clearInterval(t);
    return max;
  };
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn("taskset", ["-c", "1", cmd, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("exit", (code) => {
      children.delete(child);
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`));
    });
  });
}

async function wrk(url, seconds) {
  const out = await run("wrk", ["-t1", "-c32", `-d${seconds}s`, url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const total = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)/.exec(out)?.[1];
  return { rps, total, non2xx, errors };
}

/** The NODE_OPTIONS the container image sets (its Dockerfile's ENV line). */
function imageNodeOptions() {
  const dockerfile = readFileSync(join(here, "../../Dockerfile"), "utf8");
  const m = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile);
  if (!m) throw new Error("Dockerfile: no ENV NODE_OPTIONS line");
  return m[1];
}

/** Splits a target's tokens into node flags, environment and binary. */
function launch(flags) {
  const env = { ...process.env };
  const args = [];
  const runtime = [];
  let bin = node;
  let alt = false;
  for (const f of flags) {
    if (f === "raw") env.MESH_V8_DEFAULTS = "0";
    else if (f === "u7") env.FLOOR_UNDICI = "undici7";
    else if (f === "imageenv") env.NODE_OPTIONS = imageNodeOptions();
    else if (f === "alt") {
      bin = values["alt-node"];
      alt = true;
    } else if (f.startsWith("rt:")) runtime.push(f.slice(3));
    else if (f !== "") args.push(f);
  }
  if (runtime.length > 0) {
    env.PERF_RUNTIME_FLAGS = runtime.join(" ");
    args.push("--import", join(here, "runtime-flags.mjs"));
  }
  return { bin, args, env, alt };
}

async function startMesh(backendPort, flags, cli) {
  const port = await freePort();
  const admin = await freePort();
  const file = join(tmp, `mesh-${port}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      proxyId: "perf",
      admin: { listen: `127.0.0.1:${admin}` },
      log: { level: "warn", accessLog: false },
      outbound: {
        listen: `127.0.0.1:${port}`,
        unknownAuthority: "deny",
        services: [
          {
            name: "backend",
            authorities: [`127.0.0.1:${port}`, "backend"],
            discovery: { static: [`127.0.0.1:${backendPort}`] },
            protocol: "http1",
          },
        ],
      },
    }),
  );
  const extra = values["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${tmp}`] : [];
  const l = launch(flags);
  const entry = l.alt && values["alt-cli"] ? values["alt-cli"] : cli;
  const child = start("mesh", l.bin, [...l.args, ...extra, entry, "--config", file], {
    env: l.env,
  });
  await waitPort(port, child);
  return { child, port };
}

async function startFloor(backendPort, flags) {
  const l = launch(flags);
  const undici = l.env.FLOOR_UNDICI ?? values["floor-undici"];
  const child = start(
    "floor",
    l.bin,
    [...l.args, FLOOR, "0", `http://127.0.0.1:${backendPort}`, `--undici=${undici}`],
    { env: l.env },
  );
  return { child, port: await readyLine(child) };
}

async function startNginx(backendPort) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmp, "nginx-"));
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const child = start("nginx", "nginx", ["-c", conf, "-p", dir]);
  await waitPort(port, child);
  return { child, port };
}

function parseTarget(spec) {
  const eq = spec.indexOf("=");
  if (eq === -1) return { name: spec, flags: [] };
  return { name: spec.slice(0, eq), flags: spec.slice(eq + 1).split(" ") };
}

const targets = values.targets.split(",").map(parseTarget);
const results = new Map(targets.map((t) => [t.name, []]));

const backend = start("backend", node, [join(here, "backend.mjs")]);
const backendPort = await readyLine(backend);

for (let round = 0; round < ROUNDS; round++) {
  const order = targets.map((_, i) => targets[(i + round) % targets.length]);
  for (const t of order) {
    let s;
    if (t.name.startsWith("floor")) s = await startFloor(backendPort, t.flags);
    else if (t.name === "nginx") s = await startNginx(backendPort);
    else if (t.name === "before") s = await startMesh(backendPort, t.flags, values["before-cli"]);
    else if (t.name.startsWith("image"))
      s = await startMesh(backendPort, ["imageenv", ...t.flags], values["image-cli"]);
    else s = await startMesh(backendPort, t.flags, values.cli);
    const pid = s.child.pid;
    // taskset execs the target, so the pid is the target's own.
    await sleep(Number(values["idle-ms"]));
    const url = `http://127.0.0.1:${s.port}/`;
    const r = { rssIdle: rssMb(pid) };
    if (!values["no-rate"]) {
      if (Number(values.warmup) > 0)
        await run(node, [join(here, "rate.mjs"), url, "1000", values.warmup]);
      const stopRss = sampleRss(pid);
      const c0 = cpuTicks(pid);
      const out = JSON.parse(
        await run(node, [join(here, "rate.mjs"), url, "1000", values["rate-seconds"]]),
      );
      r.cpuUs1k = (((cpuTicks(pid) - c0) / TICK) * 1e6) / out.sent;
      r.rss1k = stopRss();
      r.failed1k = out.failed;
    }
    await wrk(url, 1);
    const stopRss = sampleRss(pid);
    const c0 = cpuTicks(pid);
    const w = await wrk(url, SECONDS);
    const c1 = cpuTicks(pid);
    r.rssMax = stopRss();
    r.rps = w.rps;
    r.cpuUs = (((c1 - c0) / TICK) * 1e6) / w.total;
    r.non2xx = w.non2xx;
    if (w.errors) r.errors = w.errors;
    results.get(t.name).push(r);
    process.stderr.write(`round ${round + 1} ${t.name}: ${JSON.stringify(round2(r))}\n`);
    await stop(s.child);
  }
}
await stop(backend);

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function round2(o) {
  return Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, typeof v === "number" ? Math.round(v * 10) / 10 : v]),
  );
}
const med = (name, key) => median(results.get(name).map((r) => r[key]));
const keys = ["rps", "cpuUs", "rssIdle", "rss1k", "cpuUs1k", "rssMax"];
const lines = [
  `| target | ${keys.join(" | ")} | rps/floor | cpu/floor | rps/nginx |`,
  `|${"---|".repeat(keys.length + 4)}`,
];
for (const { name } of targets) {
  const row = keys.map((k) => (Number.isFinite(med(name, k)) ? med(name, k).toFixed(1) : "-"));
  const ratio = (key, other) =>
    results.has(other) ? (med(name, key) / med(other, key)).toFixed(2) : "-";
  row.push(ratio("rps", "floor"), ratio("cpuUs", "floor"), ratio("rps", "nginx"));
  lines.push(`| ${name} | ${row.join(" | ")} |`);
}
process.stdout.write(
  `${lines.join("\n")}\n(medians of ${ROUNDS} rounds; loadavg ${readFileSync("/proc/loadavg", "utf8").trim()})\n`,
);
if (values.json) writeFileSync(values.json, JSON.stringify(Object.fromEntries(results), null, 1));
if (values["cpu-prof"]) process.stdout.write(`profiles in ${tmp}\n`);
