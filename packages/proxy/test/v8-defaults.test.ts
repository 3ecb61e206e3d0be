import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import {
  applySidecarV8Defaults,
  restartWithStartupV8Defaults,
  sidecarV8Flags,
  startupV8Flags,
} from "../src/cli/v8-defaults.js";
import { startProxy, tempDir, writeConfig } from "./helpers.js";

const TURBOFAN = "--invocation-count-for-turbofan=1000";
const DEFAULTS_MODULE = fileURLToPath(new URL("../src/cli/v8-defaults.ts", import.meta.url));

/**
 * Runs a fresh node that applies the launcher's defaults at run time (as `mesh-proxy`
 * does), then calls a function `calls` times across event-loop turns; returns whether V8
 * marked it for TurboFan (`--trace-opt`). With Maglev on, TurboFan takes over from Maglev's
 * code: with the launcher's threshold (1000) within 6,000 calls of this function, with V8's
 * own (3000) not within 30,000.
 */
function reachesTurbofan(calls: number, env: Record<string, string>): boolean {
  const script = `
    const { applySidecarV8Defaults } = await import(${JSON.stringify(DEFAULTS_MODULE)});
    applySidecarV8Defaults();
    function perRequest(o) { return o.a + o.b; }
    const o = { a: 1, b: 2 };
    for (let i = 0; i < ${calls}; i++) {
      perRequest(o);
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }`;
  // Compiling on the main thread makes the tier-up point the same every run (a concurrent
  // Maglev compile finishes at a time that depends on the machine).
  const args = ["--trace-opt", "--no-concurrent-recompilation", "--input-type=module", "-e"];
  const out = execFileSync(process.execPath, [...args, script], {
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    encoding: "utf8",
  });
  return /marking \S+ <JSFunction perRequest .*TURBOFAN/.test(out);
}

describe("mesh-proxy launcher V8 defaults", () => {
  test("applies both sidecar defaults when the user set no V8 flags", () => {
    expect(sidecarV8Flags([], undefined)).toEqual(["--semi-space-growth-factor=1", TURBOFAN]);
    expect(sidecarV8Flags(["--enable-source-maps"], "--trace-warnings")).toEqual([
      "--semi-space-growth-factor=1",
      TURBOFAN,
    ]);
  });

  test("keeps the young generation from growing under a max size, leaves other young-generation choices alone", () => {
    // The container image's NODE_OPTIONS: a cap for its heap budget; not growing fits under it.
    expect(sidecarV8Flags([], "--max-old-space-size=128 --max-semi-space-size=16")).toEqual([
      "--semi-space-growth-factor=1",
      TURBOFAN,
    ]);
    expect(sidecarV8Flags(["--min_semi_space_size=2"], undefined)).toEqual([TURBOFAN]);
    expect(sidecarV8Flags(["--semi-space-growth-factor=2"], undefined)).toEqual([TURBOFAN]);
  });

  test("leaves Maglev on: no flag for it, whatever the user chose", () => {
    // Maglev shortens the cold start of what the warm-up does not cover (gRPC).
    for (const user of [[], ["--maglev"], ["--no-maglev"]])
      expect(sidecarV8Flags(user, undefined).some((f) => /maglev/.test(f))).toBe(false);
  });

  test("leaves the TurboFan threshold alone when the user set one", () => {
    expect(sidecarV8Flags(["--invocation_count_for_turbofan=3000"], undefined)).toEqual([
      "--semi-space-growth-factor=1",
    ]);
    expect(sidecarV8Flags([], "--invocation-count-for-turbofan=500")).not.toContain(TURBOFAN);
  });

  test("per-request code reaches TurboFan sooner than with V8's own threshold, when applied at run time", () => {
    expect(reachesTurbofan(10_000, {})).toBe(true);
    expect(reachesTurbofan(10_000, { MESH_V8_DEFAULTS: "0" })).toBe(false);
  });

  test("MESH_V8_DEFAULTS=0 applies none, so node keeps V8's own defaults", () => {
    expect(applySidecarV8Defaults([], undefined, "0")).toEqual([]);
  });
});

/** Runs `script` as a file in a fresh node (with `flags`); resolves with its pid and output. */
function runScript(
  script: string,
  flags: string[],
  env: Record<string, string>,
): Promise<{ pid: number; out: string; code: number | null }> {
  const dir = mkdtempSync(join(tmpdir(), "mesh-v8-"));
  const file = join(dir, "launcher.mjs");
  writeFileSync(file, script);
  const child = spawn(process.execPath, [...flags, file, "an-argument"], {
    env: { ...process.env, NODE_OPTIONS: "", ...env },
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c;
  });
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ pid: child.pid as number, out, code });
    }),
  );
}

describe("mesh-proxy launcher start-only V8 defaults", () => {
  const LAUNCHER = `
    const { restartWithStartupV8Defaults } = await import(${JSON.stringify(DEFAULTS_MODULE)});
    restartWithStartupV8Defaults();
    console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, args: process.argv.slice(2) }));`;

  test("single-threaded GC unless the user chose the GC's threads", () => {
    expect(startupV8Flags([], undefined)).toEqual(["--single-threaded-gc"]);
    expect(startupV8Flags(["--enable-source-maps"], "--max-old-space-size=128")).toEqual([
      "--single-threaded-gc",
    ]);
    for (const user of [
      "--single-threaded-gc",
      "--no-single-threaded-gc",
      "--single_threaded_gc",
      "--single-threaded",
      "--no-concurrent-marking",
      "--parallel-scavenge",
      "--no-concurrent-sweeping",
    ])
      expect(startupV8Flags([user], undefined), user).toEqual([]);
  });

  test("node is re-executed in place (same PID, same arguments) with the flag on its command line", async () => {
    const run = await runScript(LAUNCHER, ["--enable-source-maps"], {});
    expect(run.code).toBe(0);
    const seen = JSON.parse(run.out) as { pid: number; execArgv: string[]; args: string[] };
    expect(seen.pid).toBe(run.pid);
    expect(seen.execArgv).toEqual(["--single-threaded-gc", "--enable-source-maps"]);
    expect(seen.args).toEqual(["an-argument"]);
  });

  test("the mesh-proxy launcher serves with the flag on its own process's command line", async () => {
    const file = writeConfig(tempDir(), {
      admin: { listen: "127.0.0.1:0" },
      outbound: { listen: "127.0.0.1:0", services: [] },
    });
    const proxy = await startProxy(file);
    try {
      // The PID node was spawned with is the one serving: re-executed in place, no wrapper.
      const argv = readFileSync(`/proc/${proxy.child.pid}/cmdline`, "utf8").split("\0");
      expect(argv.slice(1, 2)).toEqual(["--single-threaded-gc"]);
    } finally {
      await proxy.stop();
    }
  });

  test("no restart with MESH_V8_DEFAULTS=0 or when the user set the GC's threads", async () => {
    const off = await runScript(LAUNCHER, [], { MESH_V8_DEFAULTS: "0" });
    expect(JSON.parse(off.out).execArgv).toEqual([]);
    const tuned = await runScript(LAUNCHER, ["--no-single-threaded-gc"], {});
    expect(JSON.parse(tuned.out).execArgv).toEqual(["--no-single-threaded-gc"]);
    const calls: unknown[] = [];
    const execve = ((...args: unknown[]) => calls.push(args)) as unknown as typeof process.execve;
    restartWithStartupV8Defaults([], undefined, "0", execve);
    restartWithStartupV8Defaults(["--single-threaded-gc"], undefined, undefined, execve);
    expect(calls).toEqual([]);
  });
});
