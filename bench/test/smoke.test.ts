/**
 * Smoke test of the harness: every scenario's `--quick` mode runs for real (real backends,
 * proxies and load generators on loopback), writes JSON of the documented shape in which
 * every available peer produced numbers and every unavailable one says why, renders
 * REPORT.md and SVG charts, and leaves no process behind — also when interrupted.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingPeer } from "../../scripts/peers.mjs";
import { parseArgs } from "../src/cli.ts";
import type { ScenarioResult } from "../src/lib/result.ts";
import { parseWrk } from "../src/lib/runners.ts";
import { spread } from "../src/lib/stats.ts";

const BENCH = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(BENCH, "src", "cli.ts");
/** Scenarios run in parallel groups so the whole smoke stays near a minute on 2 cores. */
const GROUPS = [
  ["overhead"],
  ["balancer", "grpc", "adaptive-concurrency"],
  ["retry-storm", "identity", "metrics-cost"],
];
/** Peers that may be unavailable (only when not installed), and the words their reason must contain. */
const MAY_BE_UNAVAILABLE: Record<string, RegExp> = {
  ...(missingPeer("nginx") && { nginx: /nginx/, "nginx-pair": /nginx/ }),
  ...(missingPeer("haproxy") && { haproxy: /haproxy/, "haproxy-pair": /haproxy/ }),
};

const root = mkdtempSync(join(tmpdir(), "mesh-bench-smoke-"));
const runs: Array<{ dir: string; code: number | null; stderr: string }> = [];

function runCli(args: string[], onStderr?: (text: string, child: ChildProcess) => void) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stdout!.resume();
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
    onStderr?.(stderr, child);
  });
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, stderr })),
  );
}

/** PIDs of live processes whose command line mentions `marker` (our temp dirs). */
function processesMentioning(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.includes(marker)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function load(scenario: string): ScenarioResult {
  const run = runs.find((r) => existsSync(join(r.dir, `${scenario}.json`)));
  if (!run)
    throw new Error(
      `no ${scenario}.json; stderr: ${runs.map((r) => r.stderr.slice(-400)).join("\n")}`,
    );
  return JSON.parse(readFileSync(join(run.dir, `${scenario}.json`), "utf8")) as ScenarioResult;
}

function okPeers(result: ScenarioResult): string[] {
  return result.peers.filter((p) => p.status === "ok").map((p) => p.name);
}

beforeAll(async () => {
  await Promise.all(
    GROUPS.map(async (group, i) => {
      const dir = join(root, `group-${i}`);
      const r = await runCli([
        ...group,
        "--quick",
        "--no-install",
        "--no-pin",
        "--results-dir",
        dir,
      ]);
      runs.push({ dir, ...r });
    }),
  );
}, 170_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("every scenario in --quick mode", () => {
  it("exits 0 and leaves no child process behind", () => {
    for (const r of runs) expect(r.code, r.stderr.slice(-1000)).toBe(0);
    expect(processesMentioning("mesh-bench-")).toEqual([]);
    expect(processesMentioning(join(BENCH, "src", "peers"))).toEqual([]);
    expect(processesMentioning(join(BENCH, "src", "load"))).toEqual([]);
  });

  it.each(GROUPS.flat())("%s writes JSON of the documented shape", (scenario) => {
    const result = load(scenario);
    expect(result.schemaVersion).toBe(1);
    expect(result.scenario).toBe(scenario);
    expect(result.mode).toBe("quick");
    expect(result.machine.loadAvgAtStart).toHaveLength(3);
    expect(result.machine.cpus).toBeGreaterThan(0);
    expect(typeof result.pinning.describe).toBe("string");
    expect(result.peers.length).toBeGreaterThan(0);
    expect(result.targets.length).toBeGreaterThan(0);
    for (const t of result.targets) {
      expect([true, false, null]).toContain(t.pass);
      if (t.pass === null) expect(t.note, t.name).toBeTruthy();
      else expect(t.value, t.name).toBeTruthy();
    }
    for (const p of result.peers) {
      if (p.status === "ok") continue;
      // Never silent: a peer that did not run says why.
      expect(p.reason, `${scenario}/${p.name}`).toBeTruthy();
      const allowed = MAY_BE_UNAVAILABLE[p.name];
      expect(p.status, `${scenario}/${p.name}: ${p.reason}`).toBe("unavailable");
      expect(
        allowed?.test(p.reason ?? ""),
        `${scenario}/${p.name} may not be unavailable: ${p.reason}`,
      ).toBe(true);
    }
    const report = readFileSync(
      join(runs.find((r) => existsSync(join(r.dir, `${scenario}.json`)))!.dir, "REPORT.md"),
      "utf8",
    );
    expect(report).toContain(`## ${scenario} (quick)`);
    expect(report).toContain("Load average at start");
    for (const chart of result.charts) {
      const dir = runs.find((r) => existsSync(join(r.dir, `${scenario}.json`)))!.dir;
      expect(readFileSync(join(dir, chart.file), "utf8")).toMatch(
        /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/,
      );
    }
  });

  it("overhead: every available peer has latency at each rate, max rps, and the proxies CPU and RSS", () => {
    const result = load("overhead");
    const summaries = result.data.summaries as Record<
      string,
      {
        byRate: Record<string, Record<string, { median: number } | null>>;
        maxRps: { median: number } | null;
        rssIdleMb: { median: number } | null;
        cpuUsPerReqAtMax: { median: number } | null;
      }
    >;
    const peers = okPeers(result);
    expect(peers).toEqual(
      expect.arrayContaining(["direct", "undici-stream", "http-proxy-3", "fastify-http-proxy"]),
    );
    for (const name of peers) {
      for (const rate of ["500", "1000", "2000"]) {
        expect(summaries[name]!.byRate[rate]!.p50?.median, `${name}@${rate}`).toBeGreaterThan(0);
        expect(summaries[name]!.byRate[rate]!.p999?.median, `${name}@${rate}`).toBeGreaterThan(0);
      }
      expect(summaries[name]!.maxRps?.median, name).toBeGreaterThan(0);
      if (name !== "direct") {
        expect(summaries[name]!.rssIdleMb?.median, name).toBeGreaterThan(0);
        expect(summaries[name]!.cpuUsPerReqAtMax?.median, name).toBeGreaterThan(0);
      }
    }
    // The reference pairs ran next to the @mesh pair: two proxies each, numbers in the pairs
    // table, and every peer has a cold start (its first requests after starting).
    const pairs = [
      "node-pair",
      ...(missingPeer("nginx") ? [] : ["nginx-pair"]),
      ...(missingPeer("haproxy") ? [] : ["haproxy-pair"]),
    ];
    expect(peers).toEqual(expect.arrayContaining(pairs));
    const rounds = result.data.rounds as Record<string, Array<{ procs?: unknown[] }>>;
    const pairValues = (result.data.pairs as { values: Record<string, Record<string, unknown>> })
      .values;
    for (const name of pairs) {
      expect(rounds[name]![0]!.procs, name).toHaveLength(2);
      for (const metric of [
        "max rps",
        "CPU µs/request @1000 rps (both proxies)",
        "RSS idle MB (both proxies)",
      ])
        expect(pairValues[metric]![name], `${name}: ${metric}`).toMatchObject({
          median: expect.any(Number),
        });
    }
    for (const name of peers) {
      const cold = (summaries[name] as unknown as { coldStart: Record<string, { median: number }> })
        .coldStart;
      expect(cold.p99?.median, `${name} cold start`).toBeGreaterThan(0);
    }
    expect(JSON.stringify(result.tables)).toContain("Sidecar pairs side by side");
    const wrk = result.tools.find((t) => t.name === "wrk");
    expect(wrk, "the JSON says whether wrk was used").toBeDefined();
    expect(wrk!.available, "wrk is used when installed").toBe(!missingPeer("wrk"));
    if (!wrk!.available) expect(JSON.stringify(result.tables)).toContain("undici-closed-loop");
  });

  it("adaptive-concurrency: both apps served the overload; only the limited one sheds, at once", () => {
    const result = load("adaptive-concurrency");
    const summary = result.data.summary as Record<
      string,
      Record<string, { median: number } | null>
    >;
    expect(okPeers(result)).toEqual(["unprotected", "mesh-limit"]);
    for (const name of okPeers(result)) {
      expect(summary[name]!.goodputRps?.median, name).toBeGreaterThan(0);
      expect(summary[name]!.appP99Ms?.median, name).toBeGreaterThan(0);
    }
    expect(summary.unprotected!.rejected!.median).toBe(0);
    expect(summary["mesh-limit"]!.rejected!.median).toBeGreaterThan(0);
    expect(summary["mesh-limit"]!.limit!.median).toBeGreaterThanOrEqual(3);
    // The limiter never lets the app's concurrency run away as the unprotected one does.
    expect(summary["mesh-limit"]!.maxInFlight!.median).toBeLessThan(
      summary.unprotected!.maxInFlight!.median,
    );
  });

  it("retry-storm: every client has an amplification and a transient success rate", () => {
    const result = load("retry-storm");
    const summary = result.data.summary as Record<
      string,
      Record<string, { median: number } | null>
    >;
    expect(okPeers(result)).toEqual(["no-retry", "undici-retry-agent", "mesh-retry"]);
    for (const name of okPeers(result)) {
      expect(summary[name]!.stormAmplification?.median, name).toBeGreaterThanOrEqual(0.9);
      expect(summary[name]!.transientSuccessRate?.median, name).toBeGreaterThan(0);
    }
    // Without retries the backend sees each request once; RetryAgent multiplies them.
    expect(summary["no-retry"]!.stormAmplification!.median).toBeLessThan(1.05);
    expect(summary["undici-retry-agent"]!.stormAmplification!.median).toBeGreaterThan(2);
  });

  it("balancer: every strategy has latency and per-endpoint shares in every case, and pick cost is measured", () => {
    const result = load("balancer");
    const summary = result.data.summary as Record<
      string,
      Record<
        string,
        { p50: { median: number } | null; share: Record<string, { median: number } | null> }
      >
    >;
    expect(okPeers(result)).toEqual([
      "mesh-p2c-peak-ewma",
      "round-robin",
      "least-pending",
      "undici-balanced-pool",
    ]);
    for (const name of okPeers(result)) {
      for (const c of ["healthy", "slow", "fail-fast", "degrading"]) {
        expect(summary[name]![c]!.p50?.median, `${name}/${c}`).toBeGreaterThan(0);
        const total = Object.values(summary[name]![c]!.share).reduce(
          (a, s) => a + (s?.median ?? 0),
          0,
        );
        expect(total, `${name}/${c} shares`).toBeCloseTo(1, 1);
      }
    }
    expect(result.data.pickCost).toHaveLength(3);
  });

  it("identity: both key types have issuances/s and handshakes/s", () => {
    const result = load("identity");
    const summary = result.data.summary as Record<
      string,
      Record<string, { median: number } | null>
    >;
    expect(okPeers(result)).toEqual(["ecdsa-p256-mesh", "rsa2048-forge"]);
    for (const key of ["ecdsa", "rsa"]) {
      expect(summary[key]!.issuance?.median, key).toBeGreaterThan(0);
      expect(summary[key]!.handshakes?.median, key).toBeGreaterThan(0);
    }
  });

  it("grpc: direct and every sidecar pair have unary latency and streaming throughput", () => {
    const result = load("grpc");
    const summary = result.data.summary as Record<
      string,
      Record<string, { median: number } | null>
    >;
    const pairs = [
      "mesh-sidecar-pair",
      "node-pair",
      ...(missingPeer("nginx") ? [] : ["nginx-pair"]),
    ];
    expect(okPeers(result)).toEqual(["direct", ...pairs]);
    for (const name of okPeers(result)) {
      expect(summary[name]!.unary1000_p99?.median, name).toBeGreaterThan(0);
      expect(summary[name]!.streamMsgsPerSec?.median, name).toBeGreaterThan(0);
      for (const rate of [500, 1000]) {
        expect(summary[name]![`unary${rate}_failed`]?.median, `${name} @${rate}`).toBeTypeOf(
          "number",
        );
      }
    }
    // No call fails, direct or through the mTLS sidecar pair (undici 8.13's HTTP/2 client
    // used to turn some gRPC replies into empty OK responses there under load).
    for (const rate of [500, 1000]) {
      for (const name of ["direct", ...pairs])
        expect(summary[name]![`unary${rate}_failed`]?.median, `${name} @${rate}`).toBe(0);
    }
    for (const name of pairs) expect(summary[name]!.coldStart_p99?.median, name).toBeGreaterThan(0);
  });

  it("metrics-cost: off, noop and on each have a max rps", () => {
    const result = load("metrics-cost");
    const summary = result.data.summary as Record<
      string,
      Record<string, { median: number } | null>
    >;
    expect(okPeers(result)).toEqual(["metrics-off", "metrics-noop", "metrics-on"]);
    for (const name of okPeers(result)) expect(summary[name]!.rps?.median, name).toBeGreaterThan(0);
  });
});

describe("report", () => {
  it("--report-only rebuilds REPORT.md from the JSON files in scenario order", async () => {
    const dir = runs.find((r) => existsSync(join(r.dir, "retry-storm.json")))!.dir;
    const r = await runCli(["--report-only", "--results-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    const report = readFileSync(join(dir, "REPORT.md"), "utf8");
    const sections = [...report.matchAll(/^## ([\w-]+) \(quick\)/gm)].map((m) => m[1]);
    expect(sections).toEqual(["retry-storm", "identity", "metrics-cost"]);
    expect(report.startsWith("# @mesh benchmark report")).toBe(true);
  });
});

describe("interruption", () => {
  it("Ctrl-C mid-scenario stops every started process by PID and exits 130", async () => {
    const dir = join(root, "interrupted");
    let sent = false;
    const r = await runCli(
      ["metrics-cost", "--quick", "--no-install", "--no-pin", "--results-dir", dir],
      (text, child) => {
        // Interrupt while the backend, a Node proxy and a load generator are running.
        if (!sent && text.includes("round 1/1 metrics-off")) {
          sent = true;
          setTimeout(() => child.kill("SIGINT"), 700);
        }
      },
    );
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain("SIGINT, stopping");
    expect(processesMentioning("mesh-bench-")).toEqual([]);
    expect(processesMentioning(join(BENCH, "src", "peers"))).toEqual([]);
    expect(processesMentioning(join(BENCH, "src", "load"))).toEqual([]);
  }, 60_000);
});

describe("harness pieces", () => {
  it("rejects bad options with the option path and the bad value", () => {
    expect(() => parseArgs(["--rounds", "0"])).toThrow(
      "--rounds: expected an integer in 1..20, got 0",
    );
    expect(() => parseArgs(["nope"])).toThrow(/^scenario: expected one of overhead, .*, got nope$/);
    expect(() => parseArgs(["--frobnicate"])).toThrow("--frobnicate: expected a known option");
    expect(parseArgs([])).toMatchObject({
      quick: false,
      freshReport: true,
      scenarios: expect.arrayContaining(["overhead", "retry-storm"]),
    });
  });

  it("reads wrk's latency distribution and counts", () => {
    const out = `Running 1s test @ http://127.0.0.1:1/
  1 threads and 32 connections
  Latency Distribution
     50%  412.00us
     75%  600.00us
     90%    1.20ms
     99%    3.50ms
  12345 requests in 1.00s, 1.2MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  12340.50
`;
    expect(parseWrk(out)).toEqual({
      tool: "wrk",
      requests: 12345,
      errors: 3,
      non2xx: 7,
      rps: 12341,
      latencyMs: { p50: 0.412, p90: 1.2, p99: 3.5 },
    });
  });

  it("summarises rounds as median and range, ignoring missing values", () => {
    expect(spread([3, null, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1])).toEqual({ median: 2.5, min: 1, max: 4, n: 2 });
    expect(spread([null, undefined])).toBeNull();
  });
});
