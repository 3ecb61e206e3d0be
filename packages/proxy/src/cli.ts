#!/usr/bin/env node
import { main } from "./cli/main.js";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mesh-proxy: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
