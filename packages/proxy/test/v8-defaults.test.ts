import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { applySidecarV8Defaults, sidecarV8Flags } from "../src/cli/v8-defaults.js";

const TURBOFAN = "--invocation-count-for-turbofan=1000";
const DEFAULTS_MODULE = fileURLToPath(new URL("../src/cli/v8-defaults.ts", import.meta.url));

/**
 * Runs a fresh node that applies the launcher's defaults at run time (as `mesh-proxy`
 * does), then calls a function 2000 times across event-loop turns; returns whether V8
 * marked it for TurboFan (`--trace-opt`). V8's own threshold is 3000 calls.
 */
function tieredUpWithin2000Calls(env: Record<string, string>): boolean {
  const script = `
    const { applySidecarV8Defaults } = await import(${JSON.stringify(DEFAULTS_MODULE)});
    applySidecarV8Defaults();
    function perRequest(o) { return o.a + o.b; }
    const o = { a: 1, b: 2 };
    for (let i = 0; i < 2000; i++) {
      perRequest(o);
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }`;
  const out = execFileSync(process.execPath, ["--trace-opt", "--input-type=module", "-e", script], {
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    encoding: "utf8",
  });
  return /marking \S+ <JSFunction perRequest .*TURBOFAN/.test(out);
}

describe("mesh-proxy launcher V8 defaults", () => {
  test("applies both sidecar defaults when the user set no V8 flags", () => {
    expect(sidecarV8Flags([], undefined)).toEqual([
      "--no-maglev",
      "--semi-space-growth-factor=1",
      TURBOFAN,
    ]);
    expect(sidecarV8Flags(["--enable-source-maps"], "--trace-warnings")).toEqual([
      "--no-maglev",
      "--semi-space-growth-factor=1",
      TURBOFAN,
    ]);
  });

  test("keeps the young generation from growing under a max size, leaves other young-generation choices alone", () => {
    // The container image's NODE_OPTIONS: a cap for its heap budget; not growing fits under it.
    expect(sidecarV8Flags([], "--max-old-space-size=128 --max-semi-space-size=16")).toEqual([
      "--no-maglev",
      "--semi-space-growth-factor=1",
      TURBOFAN,
    ]);
    expect(sidecarV8Flags(["--min_semi_space_size=2"], undefined)).toEqual([
      "--no-maglev",
      TURBOFAN,
    ]);
    expect(sidecarV8Flags(["--semi-space-growth-factor=2"], undefined)).toEqual([
      "--no-maglev",
      TURBOFAN,
    ]);
  });

  test("leaves Maglev alone when the user chose either way", () => {
    expect(sidecarV8Flags(["--maglev"], undefined)).toEqual([
      "--semi-space-growth-factor=1",
      TURBOFAN,
    ]);
    expect(sidecarV8Flags([], "--no-maglev")).toEqual(["--semi-space-growth-factor=1", TURBOFAN]);
    expect(sidecarV8Flags(["--maglev", "--semi-space-growth-factor=4"], undefined)).toEqual([
      TURBOFAN,
    ]);
  });

  test("leaves the TurboFan threshold alone when the user set one", () => {
    expect(sidecarV8Flags(["--invocation_count_for_turbofan=3000"], undefined)).toEqual([
      "--no-maglev",
      "--semi-space-growth-factor=1",
    ]);
    expect(sidecarV8Flags([], "--invocation-count-for-turbofan=500")).not.toContain(TURBOFAN);
  });

  test("per-request code reaches TurboFan after 1000 calls, not V8's 3000, when applied at run time", () => {
    expect(tieredUpWithin2000Calls({})).toBe(true);
    expect(tieredUpWithin2000Calls({ MESH_V8_DEFAULTS: "0" })).toBe(false);
  });

  test("MESH_V8_DEFAULTS=0 applies none, so node keeps V8's own defaults", () => {
    expect(applySidecarV8Defaults([], undefined, "0")).toEqual([]);
  });
});
