#!/usr/bin/env node
import { runCli } from "./cli/main.js";

// The `mesh-identity` bin. Exit codes: 0 ok, 1 failure, 2 usage error.
const io = {
  out: (t: string) => process.stdout.write(t),
  err: (t: string) => process.stderr.write(t),
};
const { code, close } = await runCli(process.argv.slice(2), io);
if (close) {
  const stop = () => {
    void close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
} else {
  process.exitCode = code;
}
