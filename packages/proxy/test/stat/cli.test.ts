import { spawn } from "node:child_process";
import http from "node:http";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyStat } from "../../src/stat/index.js";
import {
  CLI,
  h1App,
  type ProxyProcess,
  runCli,
  startProxy,
  tempDir,
  writeConfig,
} from "../helpers.js";

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

function get(address: string, path: string, host: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const at = address.lastIndexOf(":");
    http
      .get(
        {
          host: address.slice(0, at),
          port: Number(address.slice(at + 1)),
          path,
          headers: { host },
          agent,
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      )
      .on("error", reject);
  });
}

describe("mesh-proxy stat against a running proxy", () => {
  let proxy: ProxyProcess;
  let apps: Awaited<ReturnType<typeof h1App>>[];
  let dead: string;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  // Answers by path: /fail is always 500 (retried once, still failing), everything else 200
  // after ~20 ms.
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    setTimeout(() => {
      res.statusCode = req.url === "/fail" ? 500 : 200;
      res.end("ok");
    }, 20);
  };

  beforeAll(async () => {
    apps = [await h1App(handler), await h1App(handler)];
    const dir = tempDir();
    const config = writeConfig(dir, {
      admin: { listen: "127.0.0.1:0" },
      log: { level: "warn" },
      outbound: {
        listen: "127.0.0.1:0",
        services: [{ name: "books", discovery: { static: apps.map((a) => a.address) } }],
      },
      inbound: { listen: "127.0.0.1:0", app: apps[0]?.address },
    });
    proxy = await startProxy(config, { MESH_PROXY_LOG__LEVEL: "info" });
    dead = `127.0.0.1:${await closedPort()}`;
    // 40 requests through outbound (10 failing) and 12 through inbound, all answered.
    const out = proxy.addresses.outbound as string;
    for (let i = 0; i < 40; i++) await get(out, i % 4 === 0 ? "/fail" : `/ok/${i}`, "books", agent);
    for (let i = 0; i < 12; i++) await get(proxy.addresses.inbound as string, "/", "books", agent);
  });

  afterAll(async () => {
    agent.destroy();
    await proxy?.stop();
    await Promise.all((apps ?? []).map((a) => a.close()));
  });

  it("--json: totals match the traffic, rates are zero while idle, an unreachable admin is its own row", async () => {
    const r = await runCli([
      "stat",
      "--admin",
      `p=${proxy.addresses.admin},down=${dead}`,
      "--json",
      "--window",
      "200ms",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { time: string; proxies: ProxyStat[] };
    const [p, down] = report.proxies;
    expect(down).toMatchObject({
      proxy: "down",
      admin: dead,
      error: { code: "MESH_PROXY_STAT_SCRAPE_FAILED" },
      traffic: [],
    });
    expect(p?.error).toBeNull();
    expect(p?.windowSeconds).toBeGreaterThan(0.1);
    const outbound = p?.traffic.find((t) => t.direction === "outbound");
    expect(outbound).toMatchObject({
      authority: "books",
      mtls: "no",
      rps: 0,
      successRate: null,
      total: { requests: 40, successes: 30, failures: 10 },
    });
    expect(p?.traffic.find((t) => t.direction === "inbound")).toMatchObject({
      authority: "books",
      total: { requests: 12, successes: 12, failures: 0 },
    });
    // Each /fail was tried twice (default retry on 5xx, limit 1): 50 attempts over 2 endpoints.
    const eps = p?.endpoints ?? [];
    expect(eps.map((e) => e.address).sort()).toEqual(apps.map((a) => a.address).sort());
    expect(eps.reduce((n, e) => n + e.total.requests, 0)).toBe(50);
    expect(eps.reduce((n, e) => n + (e.share ?? 0), 0)).toBeCloseTo(1, 9);
    // Every endpoint answered /fail with 500 at least once (10 /fail requests, each tried
    // twice, P2C over two endpoints): the balancer's decayed failure rate shows, below 1 thanks
    // to its prior of 10 pseudo-successes.
    for (const e of eps) {
      if (e.total.failures === 0) continue;
      expect(e.failureRate).toBeGreaterThan(0);
      expect(e.failureRate).toBeLessThan(1);
    }
    expect(eps.some((e) => e.failureRate > 0)).toBe(true);
  });

  it("measures rps, success rate and latency over the window while traffic flows", async () => {
    let running = true;
    let sent = 0;
    const load = (async () => {
      while (running) {
        await get(
          proxy.addresses.outbound as string,
          sent % 4 === 0 ? "/fail" : "/ok",
          "books",
          agent,
        );
        sent++;
      }
    })();
    const r = await runCli([
      "stat",
      "--admin",
      proxy.addresses.admin,
      "--json",
      "--window",
      "1s",
    ]).finally(() => {
      running = false;
    });
    await load;
    expect(r.code).toBe(0);
    const [p] = (JSON.parse(r.stdout) as { proxies: ProxyStat[] }).proxies;
    const outbound = p?.traffic.find((t) => t.direction === "outbound");
    expect(outbound?.rps).toBeGreaterThan(0);
    expect(outbound?.window.requests).toBeGreaterThan(0);
    // A quarter fail; the window may cut the sequence anywhere.
    expect(outbound?.successRate).toBeGreaterThan(0.5);
    expect(outbound?.successRate).toBeLessThan(0.95);
    // The app answers after >= 20 ms, so no percentile can be lower.
    expect(outbound?.p50).toBeGreaterThanOrEqual(20);
    expect(outbound?.p99).toBeGreaterThanOrEqual(outbound?.p50 ?? 0);
    expect(p?.endpoints.every((e) => e.rps !== null && e.share !== null)).toBe(true);
  });

  it("prints an aligned table", async () => {
    const r = await runCli([
      "stat",
      "--admin",
      `sidecar=${proxy.addresses.admin},${dead}`,
      "--window",
      "100ms",
    ]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^PROXY\s+DIRECTION\s+AUTHORITY\s+MTLS\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99$/,
    );
    const rps = (lines[0] as string).indexOf("RPS") + 3;
    const rows = lines.filter((l) => l.startsWith("sidecar ") && /bound/.test(l));
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.slice(rps - 6, rps)).toBe("0.0rps");
    expect(lines).toContain(`${dead}  error: GET http://${dead}/metrics: ECONNREFUSED`);
    expect(
      lines.some((l) =>
        /^PROXY\s+SERVICE\s+ENDPOINT\s+IDENTITY\s+STATE\s+SHARE\s+RPS\s+SUCCESS\s+FAILURE_RATE\s+EWMA_RTT\s+PENDING$/.test(
          l,
        ),
      ),
    ).toBe(true);
    // The failing /fail requests show as a non-zero balancer failure rate on some endpoint.
    const endpointRows = lines.filter(
      (l) => l.startsWith("sidecar ") && /127\.0\.0\.1:\d+/.test(l),
    );
    expect(endpointRows.some((l) => /\s(?!0\.00%)\d+\.\d\d%\s+\S+ms\s+\d+$/.test(l))).toBe(true);
  });

  it("--watch --json prints one report per interval and exits 0 on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [CLI, "stat", "--admin", proxy.addresses.admin, "--watch", "--interval", "150ms", "--json"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const reports: { proxies: ProxyStat[] }[] = [];
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await new Promise<void>((resolve) => {
      createInterface({ input: child.stdout }).on("line", (line) => {
        reports.push(JSON.parse(line) as { proxies: ProxyStat[] });
        if (reports.length === 2) resolve();
      });
    });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    for (const r of reports) {
      expect(r.proxies[0]?.windowSeconds).toBeGreaterThan(0.1);
      expect(r.proxies[0]?.traffic.length).toBeGreaterThan(0);
    }
  });

  it("exits 1 when no admin answers and 2 on usage errors", async () => {
    const none = await runCli(["stat", "--admin", dead, "--window", "10ms"]);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain("error: GET");
    const usage = await runCli(["stat", "--admin", "nope"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain(
      'mesh-proxy stat: --admin[0]: expected [name=]host:port, got "nope"',
    );
    const interval = await runCli(["stat", "--admin", dead, "--watch", "--interval", "soon"]);
    expect(interval.code).toBe(2);
    expect(interval.stderr).toContain(
      '--interval: expected a duration such as 500ms or 2s, got "soon"',
    );
  });
});
