import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the example as a user would: a separate Node process, to completion. */
function runExample(env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["index.ts"], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** stderr minus the type-stripping notice some Node 24 releases print. */
function withoutNodeWarnings(stderr: string): string {
  return stderr
    .replace(/^.*ExperimentalWarning: Type Stripping.*\n/m, "")
    .replace(/^\(Use `node --trace-warnings.*\n/m, "");
}

interface Result {
  requests: number;
  succeeded: number;
  successRate: number;
  replicas: { name: string; received: number; share: number; failedOnPurpose: number }[];
  retries: number;
  retriesByReason: Record<string, number>;
  budget: { name: string; withdrawals: number; deposits: number };
}

describe("examples/fetch-retry", () => {
  it("balances global fetch over three replicas, retrying the flaky one within the budget", async () => {
    const run = await runExample();
    expect(withoutNodeWarnings(run.stderr)).toBe("");
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split("\n");
    const result = JSON.parse(lines.at(-1)!) as Result;

    expect(result.requests).toBe(300);
    expect(result.successRate).toBeGreaterThanOrEqual(0.99);
    // The human-readable report comes first.
    expect(lines[1]).toMatch(/^success rate\s+\d+\.\d %/);

    const by = Object.fromEntries(result.replicas.map((r) => [r.name, r]));
    const healthy = by.healthy!;
    const slow = by.slow!;
    const flaky = by.flaky!;
    // Every attempt reached a replica: the originals plus each retry.
    expect(healthy.received + slow.received + flaky.received).toBe(
      result.requests + result.retries,
    );
    // Latency- and failure-aware balancing: the healthy replica carries the most traffic.
    expect(healthy.share).toBeGreaterThan(slow.share);
    expect(healthy.share).toBeGreaterThan(flaky.share);
    expect(healthy.share).toBeGreaterThan(0.5);
    // The flaky replica's 503s were retried, and the retries were paid from the budget.
    expect(flaky.failedOnPurpose).toBeGreaterThan(0);
    expect(result.retriesByReason["http-503"]).toBeGreaterThan(0);
    expect(result.budget.name).toBe("catalog");
    expect(result.budget.deposits).toBe(result.requests);
    expect(result.budget.withdrawals).toBe(result.retries);
  });

  it("refuses a bad REQUESTS value with a clear message", async () => {
    const run = await runExample({ REQUESTS: "lots" });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('REQUESTS: expected a positive integer, got "lots"');
  });
});
