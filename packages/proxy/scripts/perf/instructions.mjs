/**
 * Instructions per request of the proxy, counted by callgrind: repeatable where timing is not
 * (the same count whatever else the machine is doing), so builds can be compared on a busy
 * machine. Single hop (outbound → HTTP/1.1 backend) and the sidecar pair (outbound → mTLS
 * h2 → inbound → backend, both proxies counted and summed).
 *
 *   node scripts/perf/instructions.mjs [--mode single|pair] [--warmup 25000] [--count 5000]
 *        [--variants "now,base=/path/to/other/dist/cli.js"] [--runs 2] [--node-flags "…"]
 *
 * A variant is `name=<cli path>`, optionally followed by `@ENV=value` for its proxies; in
 * pair mode `name=nodepair` counts the bench's minimal Node mTLS pair
 * (bench/src/peers/node-pair.mjs, Node's floor) the same way.
 *
 * Each proxy runs under `valgrind --tool=callgrind --instr-atstart=no`: `--warmup` requests
 * go through uninstrumented (V8 must be done optimizing, see @mesh/metrics' README "Cost"),
 * then `callgrind_control -i on`, `--count` requests on the same 8 keep-alive connections,
 * `-i off`, dump. Prints each run and the per-variant range.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Pool } from "undici";
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
const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "single" },
    warmup: { type: "string", default: "25000" },
    count: { type: "string", default: "5000" },
    runs: { type: "string", default: "2" },
    variants: { type: "string", default: `now=${join(here, "../../dist/cli.js")}` },
    // e.g. "--single-threaded": JIT and GC on the main thread, fewer timing effects.
    "node-flags": { type: "string", default: "" },
  },
});
const tmp = mkdtempSync(join(tmpdir(), "mesh-instr-"));
const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** A proxy with `config` under callgrind. */
function underCallgrind(cli, config, name, env = {}) {
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const p = nodeUnderCallgrind([cli, "--config", file], name, env);
  return { ...p, admin: Number(config.admin.listen.split(":")[1]) };
}

/** `node <args>` under callgrind, instrumentation off until switched on. */
function nodeUnderCallgrind(args, name, env = {}) {
  const out = join(tmp, `${name}.%p.callgrind`);
  const child = spawn(
    "valgrind",
    [
      "--tool=callgrind",
      "--instr-atstart=no",
      `--callgrind-out-file=${out}`,
      process.execPath,
      ...values["node-flags"].split(" ").filter(Boolean),
      ...args,
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } },
  );
  children.add(child);
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  child.on("exit", () => children.delete(child));
  return { child, err: () => err, admin: undefined };
}

/** The bench's minimal Node mTLS pair (Node's floor), both halves under callgrind. */
async function startNodePair(tag) {
  const outPort = await freePort();
  const inPort = await freePort();
  const appOrigin = `http://127.0.0.1:${upstream}`;
  const args = nodePairArgs({ ids, inPort, outPort, appOrigin, h2: false });
  const pin = nodeUnderCallgrind([NODE_PAIR_SCRIPT, ...args.inbound], `${tag}-in`);
  await waitPort(inPort, pin.child);
  const pout = nodeUnderCallgrind([NODE_PAIR_SCRIPT, ...args.outbound], `${tag}-out`);
  await waitPort(outPort, pout.child);
  return { url: `http://127.0.0.1:${outPort}`, procs: [pout, pin] };
}

const callgrind = (pid, flag) => execFileSync("callgrind_control", [flag, String(pid)]);

/** Total instructions (`Ir`) in the dump files callgrind wrote for `pid`. */
function instructions(pid) {
  let total = 0;
  for (const f of readdirSync(tmp).filter((f) => f.includes(`.${pid}.callgrind`))) {
    // A dump's header may say `summary: 0`; `totals:` at the end is the count.
    const m = /^totals: (\d+)/m.exec(readFileSync(join(tmp, f), "utf8"));
    if (m) total += Number(m[1]);
  }
  return total;
}

async function send(pool, n) {
  const CONCURRENCY = 8;
  let left = n;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) {
        const r = await pool.request({ path: "/", method: "GET", headers: { host: "backend" } });
        await r.body.dump();
        if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
      }
    }),
  );
}

const backend = http.createServer((_req, res) => res.end("ok"));
backend.keepAliveTimeout = 60_000;
await new Promise((r) => backend.listen(0, "127.0.0.1", r));
const upstream = backend.address().port;
const ids = values.mode === "pair" ? await pairIdentities(tmp) : undefined;

async function start(cli, tag, env) {
  if (cli === "nodepair") return startNodePair(tag);
  const log = { level: "warn", accessLog: false };
  if (values.mode === "single") {
    const port = await freePort();
    const p = underCallgrind(
      cli,
      {
        admin: { listen: `127.0.0.1:${await freePort()}` },
        log,
        outbound: {
          listen: `127.0.0.1:${port}`,
          unknownAuthority: "deny",
          services: [
            {
              name: "backend",
              discovery: { static: [`127.0.0.1:${upstream}`] },
              protocol: "http1",
            },
          ],
        },
      },
      `${tag}-out`,
      env,
    );
    await waitPort(port, p.child);
    return { url: `http://127.0.0.1:${port}`, procs: [p] };
  }
  const outPort = await freePort();
  const inPort = await freePort();
  const pin = underCallgrind(
    cli,
    {
      admin: { listen: `127.0.0.1:${await freePort()}` },
      log,
      identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_INBOUND_ID, files: ids.inbound },
      inbound: pairInboundSection(inPort, upstream, "http1"),
    },
    `${tag}-in`,
    env,
  );
  await waitPort(inPort, pin.child);
  const pout = underCallgrind(
    cli,
    {
      admin: { listen: `127.0.0.1:${await freePort()}` },
      log,
      identity: { trustDomain: PAIR_TRUST_DOMAIN, id: PAIR_OUTBOUND_ID, files: ids.outbound },
      outbound: pairOutboundSection(outPort, inPort, PAIR_INBOUND_ID),
    },
    `${tag}-out`,
    env,
  );
  await waitPort(outPort, pout.child);
  return { url: `http://127.0.0.1:${outPort}`, procs: [pout, pin] };
}

// "name=cli" or "name=cli@ENV=value@ENV2=value" (e.g. @MESH_PROXY_WARMUP__REQUESTS=0).
const variants = values.variants.split(",").map((v) => {
  const eq = v.indexOf("=");
  const name = eq < 0 ? v : v.slice(0, eq);
  const [cli, ...envs] = eq < 0 ? [""] : v.slice(eq + 1).split("@");
  const env = Object.fromEntries(
    envs.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
  );
  return { name, cli: cli || join(here, "../../dist/cli.js"), env };
});
const results = Object.fromEntries(variants.map((v) => [v.name, []]));
for (let run = 0; run < Number(values.runs); run++) {
  for (const v of variants) {
    const { url, procs } = await start(v.cli, `${v.name}-${run}`, v.env);
    // After their warm-up (if any), as a cluster would.
    await Promise.all(procs.map((p) => p.admin && waitReady(p.admin, 600_000)));
    const pool = new Pool(url, { connections: 8, pipelining: 1 });
    await send(pool, Number(values.warmup));
    for (const p of procs) callgrind(p.child.pid, "-i=on");
    await send(pool, Number(values.count));
    for (const p of procs) {
      callgrind(p.child.pid, "-i=off");
      callgrind(p.child.pid, "-d");
    }
    await pool.close();
    let total = 0;
    for (const p of procs) {
      p.child.kill("SIGKILL");
      await new Promise((r) => p.child.once("exit", r));
      total += instructions(p.child.pid);
    }
    const perRequest = total / Number(values.count);
    results[v.name].push(perRequest);
    console.log(
      `${v.name} run ${run + 1}: ${(perRequest / 1000).toFixed(1)}k instructions/request`,
    );
  }
}
for (const [name, xs] of Object.entries(results)) {
  const lo = Math.min(...xs) / 1000;
  const hi = Math.max(...xs) / 1000;
  console.log(`${name}: ${lo.toFixed(1)}k–${hi.toFixed(1)}k instructions/request (${values.mode})`);
}
backend.close();
process.exit(0);
