import { spawn } from "node:child_process";

/**
 * Runs `openssl s_client` (a real TLS client for the tests of every package) with `input` on
 * stdin, kept open until the server closes (`-ign_eof`); killed after `timeoutMs`. Resolves
 * with stdout and stderr together, or `undefined` when openssl is not installed.
 */
export function sClient(
  args: readonly string[],
  input = "",
  timeoutMs = 10_000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn("openssl", ["s_client", "-ign_eof", ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill(), timeoutMs);
    child.on("error", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    child.stdin.end(input);
  });
}
