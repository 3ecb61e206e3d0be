import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { proxyFeatures } from "../src/configs.ts";
import { proxyCli } from "../src/demo.ts";
import type { DemoSummary } from "../src/summary.ts";

const START = fileURLToPath(new URL("../src/start.ts", import.meta.url));

function run(env: NodeJS.ProcessEnv): {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, [START], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

async function leftovers(pids: number[], ports: number[]) {
  const free = await Promise.all(ports.map(portFree));
  return {
    running: pids.filter(alive),
    busyPorts: ports.filter((_, i) => !free[i]),
  };
}

describe("the demo mesh", () => {
  it("headless for 10 s: traffic through every sidecar, balancing and retries at work, nothing left behind", async () => {
    // mTLS is on whenever the proxy supports identity (MESH_DEMO_MTLS defaults to auto).
    const { identity: mtlsSupported } = await proxyFeatures(proxyCli());
    const demo = run({ MESH_DEMO_DURATION: "10s", MESH_DEMO_MTLS: "auto" });
    const code = await demo.exited;
    expect(code, demo.stderr()).toBe(0);
    const lines = demo.stdout().trimEnd().split("\n");
    const summary = JSON.parse(lines[lines.length - 1] as string) as DemoSummary;
    expect(demo.stdout()).toMatch(/^final \(/m);
    expect(demo.stdout()).toMatch(/^PROXY\s+DIRECTION\s+AUTHORITY\s+MTLS\s+SUCCESS\s+RPS/m);

    // ~50 rps for ~10 s into web, answered.
    expect(summary.generator.sent).toBeGreaterThan(200);
    expect(summary.generator.errors).toBe(0);
    // Every sidecar carried traffic: web in and out, each books replica in.
    expect(Object.keys(summary.sidecars)).toEqual([
      "web",
      "books-fast",
      "books-slow",
      "books-flaky",
    ]);
    expect(summary.sidecars.web?.inbound?.requests).toBeGreaterThan(200);
    expect(summary.sidecars.web?.outbound?.requests).toBeGreaterThan(200);
    for (const name of ["books-fast", "books-slow", "books-flaky"]) {
      expect(summary.sidecars[name]?.inbound?.requests, name).toBeGreaterThan(0);
    }
    expect(summary.mtls).toBe(mtlsSupported);
    if (mtlsSupported) {
      // Every sidecar-to-sidecar hop is mutually authenticated; the load into web is not meshed.
      expect(summary.sidecars.web?.outbound?.mtls).toBe("yes");
      for (const name of ["books-fast", "books-slow", "books-flaky"]) {
        expect(summary.sidecars[name]?.inbound?.mtls, name).toBe("yes");
      }
      for (const b of Object.values(summary.books))
        expect(b.identity).toMatch(/^spiffe:\/\/demo\.mesh\//);
    }

    // Peak-EWMA steers away from the slow replica: it gets the smallest share. The flaky one
    // answers as fast as the fast one and fails 10 %: its cost is raised by its failure rate,
    // but with retries it still serves a success sooner than the slow one, so it gets more.
    const { fast, slow, flaky } = summary.books;
    expect(fast && slow && flaky).toBeTruthy();
    expect(slow?.share).toBeLessThan(flaky?.share ?? 0);
    expect(slow?.share).toBeLessThan((fast?.share ?? 0) / 1.5);
    // Retries hide the flaky replica's 503s from web.
    expect(summary.flakyRawSuccessRate).toBeLessThan(1);
    expect(summary.webToBooksSuccessRate).toBeGreaterThan(summary.flakyRawSuccessRate ?? 1);

    // Nothing is left running and every port is free again.
    expect(summary.pids).toHaveLength(8);
    expect(await leftovers(summary.pids, summary.ports)).toEqual({ running: [], busyPorts: [] });
  }, 40_000);

  it("SIGTERM stops every child cleanly", async () => {
    const demo = run({});
    const ready = await new Promise<{ pids: number[]; ports: number[] }>((resolve, reject) => {
      const check = () => {
        const m = /^ready: pids ([\d,]+) ports ([\d,]+)$/m.exec(demo.stderr());
        if (m)
          resolve({
            pids: (m[1] as string).split(",").map(Number),
            ports: (m[2] as string).split(",").map(Number),
          });
      };
      demo.child.stderr?.on("data", check);
      void demo.exited.then((code) => reject(new Error(`demo exited (${code}): ${demo.stderr()}`)));
    });
    expect(ready.pids.every(alive)).toBe(true);
    demo.child.kill("SIGTERM");
    expect(await demo.exited).toBe(0);
    expect(await leftovers(ready.pids, ready.ports)).toEqual({ running: [], busyPorts: [] });
  }, 30_000);
});
