import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  GoldenSignals,
  instrumentServer,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
} from "../src/index.js";
import { close, listen } from "./helpers/net.js";

async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function query(base: string, promql: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { data?: { result?: Array<{ value: [number, string] }> } };
    const v = body.data?.result?.[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  } catch {
    return undefined; // not up yet
  }
}

/** Polls until `check` passes; bounded by the test timeout. 100 ms steps: Prometheus scrapes every 1 s. */
async function until<T>(get: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await get();
    if (check(v)) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(missingPeer("prometheus"))("a real Prometheus server", () => {
  it("scrapes /metrics and answers a rate() query over the recorded counter", {
    timeout: 60_000,
  }, async () => {
    const signals = new GoldenSignals();
    const app = http.createServer((req, res) => {
      if (req.url === "/metrics") {
        res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE });
        res.end(renderPrometheus(signals.registry));
        return;
      }
      res.end("hello");
    });
    instrumentServer(app, {
      signals,
      route: (_m, path) => (path === "/metrics" ? "metrics" : "app"),
    });
    const appPort = await listen(app);
    cleanups.push(() => close(app));
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await fetch(`http://127.0.0.1:${appPort}/work`);
        await r.text();
      }
    };
    await send(10);

    const dir = await mkdtemp(join(tmpdir(), "mesh-metrics-prom-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      join(dir, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ["127.0.0.1:${appPort}"]\n`,
    );
    const promPort = await freePort();
    const prom: ChildProcess = spawn(
      "prometheus",
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: "ignore" },
    );
    cleanups.push(async () => {
      if (prom.exitCode === null) {
        prom.kill("SIGTERM");
        await once(prom, "exit");
      }
    });
    const base = `http://127.0.0.1:${promPort}`;

    // the scrape target is healthy and the counter arrived with its labels
    const sel = 'request_total{job="app",direction="inbound",route="app"}';
    expect(
      await until(
        () => query(base, sel),
        (v) => v !== undefined && v >= 10,
      ),
    ).toBe(10);
    await send(20);
    const rate = await until(
      () => query(base, `rate(${sel}[1m])`),
      (v) => v !== undefined && v > 0,
    );
    expect(rate).toBeGreaterThan(0);
    expect(
      await until(
        () => query(base, sel),
        (v) => v === 30,
      ),
    ).toBe(30);
    expect(await query(base, 'up{job="app"}')).toBe(1);
  });
});
