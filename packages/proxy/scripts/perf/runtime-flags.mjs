/**
 * Preload (`node --import runtime-flags.mjs …`): applies the V8 flags in PERF_RUNTIME_FLAGS
 * with `v8.setFlagsFromString` before the entry module loads, as the mesh-proxy launcher
 * applies its defaults. Some flags act differently at run time than on the command line
 * (`--semi-space-growth-factor=1` on the command line still lets the young generation grow
 * to 32 MB during startup), so the launcher's choices are measured this way.
 */
import { setFlagsFromString } from "node:v8";

for (const flag of (process.env.PERF_RUNTIME_FLAGS ?? "").split(" ").filter(Boolean))
  setFlagsFromString(flag);
