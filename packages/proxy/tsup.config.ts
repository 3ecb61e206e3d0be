import { defineConfig } from "tsup";

export default defineConfig({
  // One build for the library and the CLI so `clean` cannot race a second build.
  // esbuild keeps the CLI's `#!/usr/bin/env node` line.
  entry: ["src/index.ts", "src/cli.ts"],
  format: ["esm"],
  target: "node22",
  dts: { entry: ["src/index.ts"] },
  clean: true,
  sourcemap: false,
  // Ship the config's JSON Schema, generated from the zod schema that validates it, and the
  // dashboard's static page.
  onSuccess: "node scripts/write-schema.mjs && node scripts/copy-dashboard.mjs",
});
