import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  ACCEPTED_LINT,
  type GatewayProcess,
  latch,
  nodeGet,
  promtoolCheck,
  sample,
  startGateway,
  startUpstream,
  stopGateway,
  type Upstream,
  withoutNodeWarnings,
} from "./helpers.ts";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function gateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const gw = await startGateway(env);
  cleanup.push(() => stopGateway(gw));
  return gw;
}

async function upstream(handler: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
  const up = await startUpstream(handler);
  cleanup.push(() => up.close());
  return up;
}

function client(): Agent {
  const agent = new Agent();
  cleanup.push(() => agent.close());
  return agent;
}

describe("examples/gateway: forwarding", () => {
  it("forwards /api/* to UPSTREAMS, strips hop-by-hop headers both ways and counts requests in /metrics", async ({
    skip,
  }) => {
    skip(missingPeer("promtool"), "needs promtool");
    const handler: Parameters<typeof startUpstream>[0] = (req, res) => {
      res.setHeader("connection", "keep-alive, x-hop");
      res.setHeader("x-hop", "must not reach the client");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ path: req.url }));
    };
    const a = await upstream(handler);
    const b = await upstream(handler);
    const gw = await gateway({ UPSTREAMS: `${a.address},${b.address}` });

    const n = 12;
    for (let i = 0; i < n; i++) {
      const res = await nodeGet(`${gw.origin}/api/items/${i}?q=1`, {
        connection: "keep-alive, x-private",
        "x-private": "hop-by-hop, named in Connection",
        te: "trailers",
        "x-request-id": `r${i}`,
      });
      expect(res.status).toBe(200);
      expect(res.headers["x-hop"]).toBeUndefined();
      expect(JSON.parse(res.body)).toEqual({ path: `/api/items/${i}?q=1` });
    }
    expect(a.hits + b.hits).toBe(n);

    const seen = (a.lastHeaders ?? b.lastHeaders)!;
    expect(seen["x-request-id"]).toMatch(/^r\d+$/);
    expect(seen["x-private"]).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-host"]).toBe(`127.0.0.1:${gw.port}`);
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect([a.address, b.address]).toContain(seen.host);

    const scrape = await request(`${gw.origin}/metrics`, { dispatcher: client() });
    expect(scrape.statusCode).toBe(200);
    expect(scrape.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await scrape.body.text();
    const inbound = `direction="inbound",authority="127.0.0.1:${gw.port}",tls="no_identity",route="/api/*"`;
    expect(sample(text, `request_total{${inbound}}`)).toBe(n);
    expect(
      sample(text, `response_total{${inbound},classification="success",status_code="200"}`),
    ).toBe(n);
    const outbound = `direction="outbound",authority="upstreams",tls="no_identity",backend="upstreams"`;
    expect(sample(text, `request_total{${outbound}}`)).toBe(n);
    expect(text).toMatch(/^mesh_balancer_endpoint_state\{balancer="upstreams",/m);

    const check = await promtoolCheck(text);
    expect(check.code).not.toBe(1); // 1 = unparseable exposition
    expect(check.problems.filter((p) => !ACCEPTED_LINT.test(p))).toEqual([]);
  });

  it("streams request and response bodies without buffering them", async () => {
    const requestChunkSeen = latch();
    const responseChunkSeen = latch();
    let upstreamReceived = "";
    const up = await upstream((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      req.on("data", (chunk: Buffer) => {
        upstreamReceived += chunk;
        if (upstreamReceived === "ping") requestChunkSeen.open();
      });
      req.on("end", async () => {
        res.write("first;");
        // Only finishes once the client has read the first chunk through the gateway.
        await responseChunkSeen.promise;
        res.end("second");
      });
    });
    const gw = await gateway({ UPSTREAMS: up.address });

    // The body's end waits until the upstream has received its first chunk through the gateway.
    async function* body() {
      yield "ping";
      await requestChunkSeen.promise;
      yield "pong";
    }
    const res = await request(`${gw.origin}/api/stream`, {
      dispatcher: client(),
      method: "POST",
      body: Readable.from(body()),
    });
    expect(res.statusCode).toBe(200);
    let received = "";
    for await (const chunk of res.body) {
      received += chunk;
      if (received === "first;") responseChunkSeen.open();
    }
    expect(received).toBe("first;second");
    expect(upstreamReceived).toBe("pingpong");
  });

  it("relays a 1 MiB body byte-exact in both directions", async () => {
    const up = await upstream((req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      req.pipe(res);
    });
    const gw = await gateway({ UPSTREAMS: up.address });
    const payload = randomBytes(1024 * 1024);
    const res = await request(`${gw.origin}/api/echo`, {
      dispatcher: client(),
      method: "PUT",
      body: payload,
    });
    expect(res.statusCode).toBe(200);
    const echoed = Buffer.from(await res.body.arrayBuffer());
    expect(createHash("sha256").update(echoed).digest("hex")).toBe(
      createHash("sha256").update(payload).digest("hex"),
    );
  });

  it("retries a failing upstream within the budget and shows the retries in /metrics", async () => {
    const failing = await upstream((_req, res) => {
      res.writeHead(503).end("down");
    });
    const healthy = await upstream((_req, res) => {
      res.end("ok");
    });
    const gw = await gateway({ UPSTREAMS: `${failing.address},${healthy.address}` });
    const dispatcher = client();
    for (let i = 0; i < 20; i++) {
      const res = await request(`${gw.origin}/api/x`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe("ok");
    }
    expect(failing.hits).toBeGreaterThan(0);
    const text = await (await request(`${gw.origin}/metrics`, { dispatcher })).body.text();
    // Every 503 was retried (each request ended in 200), and @mesh/metrics saw it on the
    // mesh:retry:retry channel.
    expect(sample(text, 'mesh_retry_retries_total{name="upstreams",reason="http-503"}')).toBe(
      failing.hits,
    );
  });

  it("starts demo upstreams when UPSTREAMS is not set, and answers 404 off /api", async () => {
    const gw = await gateway();
    const demo = await gw.waitForLog("demo upstreams started");
    expect(demo.upstreams).toHaveLength(3);
    const dispatcher = client();
    const res = await request(`${gw.origin}/api/hello`, { dispatcher });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ method: "GET", path: "/api/hello" });
    const other = await request(`${gw.origin}/elsewhere`, { dispatcher });
    expect(other.statusCode).toBe(404);
    expect(await other.body.json()).toMatchObject({ error: "not_found" });
  });
});

describe("examples/gateway: errors", () => {
  it("answers 502 with a JSON body when the upstream refuses connections", async () => {
    const gone = await startUpstream((_req, res) => res.end());
    await gone.close(); // the port is now closed: connections are refused
    const gw = await gateway({ UPSTREAMS: gone.address });
    const res = await request(`${gw.origin}/api/x`, { dispatcher: client() });
    expect(res.statusCode).toBe(502);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(await res.body.json()).toEqual({
      error: "bad_gateway",
      message: "the upstream failed to answer",
      code: "ECONNREFUSED",
    });
    const logged = await gw.waitForLog("upstream error");
    expect(logged).toMatchObject({ status: 502, code: "ECONNREFUSED", path: "/api/x" });
  });

  it("answers 504 when the upstream does not answer within the request deadline", async () => {
    const hanging = await upstream(() => {
      // never answers; closed by the test's cleanup
    });
    const gw = await gateway({
      UPSTREAMS: hanging.address,
      REQUEST_TIMEOUT_MS: "300",
      PER_TRY_TIMEOUT_MS: "150",
    });
    const dispatcher = client();
    const res = await request(`${gw.origin}/api/slow`, { dispatcher });
    expect(res.statusCode).toBe(504);
    const body = (await res.body.json()) as { error: string; code: string };
    expect(body.error).toBe("gateway_timeout");
    expect(["MESH_RETRY_REQUEST_TIMEOUT", "MESH_RETRY_PER_TRY_TIMEOUT"]).toContain(body.code);
    const text = await (await request(`${gw.origin}/metrics`, { dispatcher })).body.text();
    const inbound = `direction="inbound",authority="127.0.0.1:${gw.port}",tls="no_identity",route="/api/*"`;
    expect(
      sample(text, `response_total{${inbound},classification="failure",status_code="504"}`),
    ).toBe(1);
  });

  it("refuses invalid configuration with a clear message and exit code 2", async () => {
    await expect(startGateway({ UPSTREAMS: "127.0.0.1:9001,not-an-address" })).rejects.toThrow(
      /exited \(2\)/,
    );
  });
});

describe("examples/gateway: shutdown", () => {
  it("on SIGTERM stops accepting, finishes the request in flight and exits 0", async () => {
    const arrived = latch();
    const release = latch();
    const up = await upstream(async (_req, res) => {
      arrived.open();
      await release.promise;
      res.end("finished");
    });
    const gw = await startGateway({ UPSTREAMS: up.address });
    const dispatcher = client();
    const inFlight = request(`${gw.origin}/api/long`, { dispatcher });
    await arrived.promise;

    gw.child.kill("SIGTERM");
    await gw.waitForLog("shutting down");
    // New connections are refused while the request in flight is still served.
    await expect(request(`${gw.origin}/api/x`, { dispatcher: client() })).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
    release.open();
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("finished");

    expect(await gw.exited).toBe(0);
    expect(gw.logs.at(-1)).toMatchObject({ msg: "stopped" });
    expect(withoutNodeWarnings(gw.stderr())).toBe("");
  });
});
