#!/usr/bin/env node
import { applySidecarV8Defaults, restartWithStartupV8Defaults } from "./cli/v8-defaults.js";

// First: V8 reads its GC threading only as it starts, so node is re-executed with it
// (same PID) when it is missing. Then, before anything else loads, the run-time defaults:
// the young generation grows from the first allocations on.
restartWithStartupV8Defaults();
applySidecarV8Defaults();
const { main } = await import("./cli/main.js");

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mesh-proxy: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
