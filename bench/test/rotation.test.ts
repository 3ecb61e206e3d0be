/**
 * The `rotation` scenario in --quick mode, for real: an issuer handing out 3 s certificates,
 * two mesh-proxy processes renewing them under HTTP/1.1 + gRPC load. Checks the JSON a user
 * reads (shape, targets), that both proxies rotated at least twice during the load, that no
 * request or call failed, and that nothing is left running.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ScenarioResult } from "../src/lib/result.ts";

const BENCH = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(BENCH, "src", "cli.ts");
const dir = mkdtempSync(join(tmpdir(), "mesh-bench-rotation-"));
let run: { code: number | null; stderr: string };
let result: ScenarioResult;

/** PIDs of live processes whose command line contains every marker. */
function processesMentioning(...markers: string[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (markers.every((m) => cmdline.includes(m))) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

beforeAll(async () => {
  const child = spawn(
    process.execPath,
    [CLI, "rotation", "--quick", "--no-install", "--no-pin", "--results-dir", dir],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (c: string) => {
    stderr += c;
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  run = { code, stderr };
  result = JSON.parse(readFileSync(join(dir, "rotation.json"), "utf8")) as ScenarioResult;
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("rotation --quick", () => {
  it("exits 0, writes the report and leaves no process behind", () => {
    expect(run.code, run.stderr.slice(-1500)).toBe(0);
    expect(readFileSync(join(dir, "REPORT.md"), "utf8")).toContain("## rotation (quick)");
    // The scenario's proxies run from configs under <bench tmp>/rotation-<time>/.
    expect(processesMentioning("dist/cli.js", "/rotation-", "bound.json")).toEqual([]);
  });

  it("writes JSON of the documented shape with the pair ok and every target measured", () => {
    expect(result).toMatchObject({ schemaVersion: 1, scenario: "rotation", mode: "quick" });
    expect(result.peers).toEqual([
      expect.objectContaining({ name: "mesh-sidecar-pair", status: "ok" }),
    ]);
    expect(result.targets.map((t) => t.name)).toEqual([
      "failed HTTP/1.1 requests across rotations",
      "failed gRPC calls across rotations",
      "certificate rotations on each proxy during the load",
    ]);
    for (const t of result.targets)
      expect(t.pass, `${t.name}: ${t.value} ${t.note ?? ""}`).toBe(true);
    for (const chart of result.charts)
      expect(readFileSync(join(dir, chart.file), "utf8")).toMatch(/^<svg /);
  });

  it("rotates each proxy's certificate at least twice with zero failed requests and calls", () => {
    const data = result.data as {
      plan: { lifetimeMs: number; durationMs: number };
      http: { sent: number; ok: number; failed: number; latencyMs: { p50: number; p99: number } };
      grpc: { sent: number; ok: number; failed: number; latencyMs: { p50: number; p99: number } };
      rotations: { outbound: number; inbound: number };
      refreshFailures: { outbound: number; inbound: number };
    };
    expect(data.plan.lifetimeMs).toBe(3_000);
    expect(data.rotations.outbound).toBeGreaterThanOrEqual(2);
    expect(data.rotations.inbound).toBeGreaterThanOrEqual(2);
    expect(data.refreshFailures).toEqual({ outbound: 0, inbound: 0 });
    for (const load of [data.http, data.grpc]) {
      expect(load.sent).toBeGreaterThan(0);
      expect(load.failed).toBe(0);
      expect(load.ok).toBe(load.sent);
      expect(load.latencyMs.p99).toBeGreaterThanOrEqual(load.latencyMs.p50);
    }
  });
});
