import { spawn } from "node:child_process";

/** Result of `promtool check metrics` on a text exposition. */
export interface PromtoolResult {
  code: number;
  /** Lint/problem lines, trimmed, empty lines removed. */
  problems: string[];
}

/** Pipes `text` into the real `promtool check metrics` (installed by CI from Debian's `prometheus`). */
export function promtoolCheck(text: string): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        problems: out
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l !== ""),
      }),
    );
    child.stdin.end(text);
  });
}

/** The one lint accepted on purpose: Linkerd's own `_ms` metric names (dashboard compatibility). */
export const ACCEPTED_LINT =
  /^(response_latency_ms|tcp_connection_duration_ms) metric names should not contain abbreviated units$/;
