import { describe, expect, test } from "vitest";
import { applySidecarV8Defaults, sidecarV8Flags } from "../src/cli/v8-defaults.js";

describe("mesh-proxy launcher V8 defaults", () => {
  test("applies both sidecar defaults when the user set no V8 flags", () => {
    expect(sidecarV8Flags([], undefined)).toEqual(["--no-maglev", "--semi-space-growth-factor=1"]);
    expect(sidecarV8Flags(["--enable-source-maps"], "--trace-warnings")).toEqual([
      "--no-maglev",
      "--semi-space-growth-factor=1",
    ]);
  });

  test("keeps the young generation from growing under a max size, leaves other young-generation choices alone", () => {
    // The container image's NODE_OPTIONS: a cap for its heap budget; not growing fits under it.
    expect(sidecarV8Flags([], "--max-old-space-size=128 --max-semi-space-size=16")).toEqual([
      "--no-maglev",
      "--semi-space-growth-factor=1",
    ]);
    expect(sidecarV8Flags(["--min_semi_space_size=2"], undefined)).toEqual(["--no-maglev"]);
    expect(sidecarV8Flags(["--semi-space-growth-factor=2"], undefined)).toEqual(["--no-maglev"]);
  });

  test("leaves Maglev alone when the user chose either way", () => {
    expect(sidecarV8Flags(["--maglev"], undefined)).toEqual(["--semi-space-growth-factor=1"]);
    expect(sidecarV8Flags([], "--no-maglev")).toEqual(["--semi-space-growth-factor=1"]);
    expect(sidecarV8Flags(["--maglev", "--semi-space-growth-factor=4"], undefined)).toEqual([]);
  });

  test("MESH_V8_DEFAULTS=0 applies none, so node keeps V8's own defaults", () => {
    expect(applySidecarV8Defaults([], undefined, "0")).toEqual([]);
  });
});
