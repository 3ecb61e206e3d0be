#!/usr/bin/env node
import { applySidecarV8Defaults } from "./cli/v8-defaults.js";

// Before anything else loads: the young generation grows from the first allocations on.
applySidecarV8Defaults();
const { main } = await import("./cli/main.js");

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mesh-proxy: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
