import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h1App, type Listening, launch, type ProxyProcess } from "./helpers.js";
import { admin, get, metric, Pki, WEB } from "./mesh/fixtures.js";

/**
 * The warm-up before /ready (`warmup`): real proxy processes, a real issuer for their SVIDs,
 * and an app that counts what reaches it — the warm-up's traffic never may.
 */

/** Lets the config decide (the test helpers turn the warm-up off by default). */
const CONFIG_DECIDES = { MESH_PROXY_WARMUP__REQUESTS: undefined };

const pki = new Pki();
let app: Listening<import("node:http").Server>;
let appRequests = 0;
const running: ProxyProcess[] = [];

beforeAll(async () => {
  await pki.start();
  app = await h1App((req, res) => {
    appRequests++;
    req.resume();
    req.on("end", () => res.end("app"));
  });
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await app.close();
  await pki.stop();
});

/** A proxy with both sides: inbound in front of the app, outbound to it (plain). */
async function sidecar(extra: Record<string, unknown>): Promise<ProxyProcess> {
  const p = await launch(
    {
      log: { level: "info" },
      inbound: { listen: "127.0.0.1:0", app: app.address },
      outbound: {
        listen: "127.0.0.1:0",
        services: [{ name: "app", discovery: { static: [app.address] } }],
      },
      ...extra,
    },
    CONFIG_DECIDES,
  );
  running.push(p);
  return p;
}

const warmedUp = (p: ProxyProcess) =>
  p.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("warm"));

describe("warm-up before /ready", () => {
  for (const meshHttp1 of ["h2", "http1"] as const) {
    it(`sends warmup.requests through each side over mTLS (meshHttp1 ${meshHttp1}), none to the app, none in /metrics`, async () => {
      const before = appRequests;
      const p = await sidecar({
        identity: pki.identity(WEB),
        warmup: { requests: 300, timeout: "60s" },
        inbound: {
          listen: "127.0.0.1:0",
          app: app.address,
          policy: { default: "all-authenticated" },
        },
        outbound: {
          listen: "127.0.0.1:0",
          meshHttp1,
          services: [{ name: "app", discovery: { static: [app.address] } }],
        },
      });
      const line = await warmedUp(p);
      expect(line).toMatchObject({
        msg: "warmed up; ready",
        outbound: 300,
        inbound: 300,
        mtls: true,
      });
      expect((await admin(p, "/ready")).status).toBe(200);
      expect(appRequests).toBe(before);
      const metrics = (await admin(p, "/metrics")).body;
      expect(metrics).not.toContain("mesh-warmup");
      expect(metric(metrics, "request_total")).toBe(0);
      // The real path works after it, and is what the metrics count.
      const res = await get(p.addresses.outbound as string, "app", "/after-warmup");
      expect(res).toMatchObject({ status: 200, body: "app" });
      expect(appRequests).toBe(before + 1);
      const after = (await admin(p, "/metrics")).body;
      expect(metric(after, "request_total", 'direction="outbound"')).toBe(1);
      expect(metric(after, "request_total", 'direction="inbound"')).toBe(0);
    });
  }

  it("holds /ready until warmup.timeout ends an unfinished warm-up, then is ready", async () => {
    const p = await sidecar({ warmup: { requests: 100_000, timeout: "3s" } });
    // The "listening" line comes as the warm-up starts: it cannot be done with 100 k requests.
    expect((await admin(p, "/ready")).status).toBe(503);
    const line = await warmedUp(p);
    expect(line).toMatchObject({
      msg: "warm-up stopped at warmup.timeout; ready",
      mtls: false,
      timeoutMs: 3000,
    });
    expect(Number(line.outbound) + Number(line.inbound)).toBeGreaterThan(0);
    expect((await admin(p, "/ready")).status).toBe(200);
  });

  it("warms the plaintext path without an identity, and only the sides the proxy has", async () => {
    const p = await launch(
      {
        log: { level: "info" },
        warmup: { requests: 200 },
        outbound: {
          listen: "127.0.0.1:0",
          services: [{ name: "app", discovery: { static: [app.address] } }],
        },
      },
      CONFIG_DECIDES,
    );
    running.push(p);
    expect(await warmedUp(p)).toMatchObject({
      msg: "warmed up; ready",
      outbound: 200,
      inbound: 0,
      mtls: false,
    });
  });

  it("is off with warmup.requests: 0 (ready at once, no warm-up log)", async () => {
    const p = await sidecar({ warmup: { requests: 0 } });
    expect((await admin(p, "/ready")).status).toBe(200);
    expect(p.logs.some((l) => String(l.msg).startsWith("warm"))).toBe(false);
  });
});
