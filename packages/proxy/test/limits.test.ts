import type http from "node:http";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h1App, launch, type ProxyProcess } from "./helpers.js";
import {
  admin,
  BOOKS,
  EVIL,
  echoApp,
  get,
  metric,
  Pki,
  proxy,
  ready,
  WEB,
} from "./mesh/fixtures.js";

// Rates far below the request rate of a test (one request per 100 s) keep the outcomes
// independent of timing: only the burst is ever available.
const SLOW = 0.01;

/** A gRPC-shaped request (HTTP/2, application/grpc) straight to a proxy listener. */
async function grpcCall(address: string): Promise<http2.IncomingHttpHeaders> {
  const client = http2.connect(`http://${address}`);
  try {
    const stream = client.request({
      ":method": "POST",
      ":path": "/echo.Echo/Unary",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      stream.on("response", resolve);
      stream.on("error", reject);
    });
    stream.resume();
    await new Promise((r) => stream.on("close", r));
    return headers;
  } finally {
    client.close();
  }
}

/** One proxy: inbound with limits in front of the app, outbound with a rate-limited service to it. */
describe("rate limits and adaptive concurrency (plaintext)", () => {
  let app: Awaited<ReturnType<typeof h1App>>;
  let limited: ProxyProcess;
  const held: http.ServerResponse[] = [];

  beforeAll(async () => {
    console.time("before");
    app = await h1App((req, res) => {
      if (req.url === "/hold") {
        held.push(res);
        return;
      }
      res.end("ok");
    });
    limited = await launch({
      inbound: {
        listen: "127.0.0.1:0",
        app: app.address,
        rateLimit: { total: { requestsPerSecond: SLOW, burst: 3 } },
        adaptiveConcurrency: { minLimit: 1, maxLimit: 1 },
      },
      outbound: {
        listen: "127.0.0.1:0",
        services: [
          {
            name: "books",
            discovery: { static: [app.address] },
            rateLimit: { requestsPerSecond: SLOW, burst: 1 },
          },
        ],
      },
    });
  });

  afterAll(async () => {
    console.time("after");
    for (const r of held) r.end();
    await limited?.stop();
    await app?.close();
  });

  it("answers 503 concurrency limit reached beyond the adaptive limit, without queueing", async () => {
    const inbound = limited.addresses.inbound as string;
    const first = get(inbound, "books", "/hold");
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const second = await get(inbound, "books", "/");
    expect(second.status).toBe(503);
    expect(second.headers["mesh-proxy-error"]).toBe("concurrency limit reached");
    held[0]?.end("done");
    expect((await first).status).toBe(200);
  });

  it("answers 429 with retry-after and mesh-proxy-error beyond the total rate; gRPC gets RESOURCE_EXHAUSTED", async () => {
    const inbound = limited.addresses.inbound as string;
    // The burst of 3 was partly used above (2 requests); one left.
    expect((await get(inbound, "books", "/")).status).toBe(200);
    const refused = await get(inbound, "books", "/");
    expect(refused.status).toBe(429);
    expect(refused.headers["mesh-proxy-error"]).toBe("rate limited (total limit)");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(99);
    const grpc = await grpcCall(inbound);
    expect(grpc[":status"]).toBe(200);
    expect(grpc["grpc-status"]).toBe("8");
    expect(grpc["mesh-proxy-error"]).toBe("rate limited (total limit)");
    const metrics = (await admin(limited, "/metrics")).body;
    expect(metric(metrics, "mesh_ratelimit_rejected_total", 'limit="total"')).toBe(2);
    expect(metric(metrics, "response_total", 'status_code="429"')).toBe(1);
    expect(metric(metrics, "mesh_concurrency_limit_rejected_total", 'name="inbound"')).toBe(1);
  });

  it("outbound: fails fast with 429 + retry-after once a service's rate is used up", async () => {
    const outbound = limited.addresses.outbound as string;
    expect((await get(outbound, "books", "/")).status).toBe(200);
    const refused = await get(outbound, "books", "/");
    expect(refused.status).toBe(429);
    expect(refused.headers["mesh-proxy-error"]).toBe("rate limited");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(99);
    const metrics = (await admin(limited, "/metrics")).body;
    expect(metric(metrics, "mesh_ratelimit_rejected_total", 'name="books"')).toBe(1);
  });
});

describe("inbound rate limit per client identity over mTLS", () => {
  const pki = new Pki();
  let app: Awaited<ReturnType<typeof echoApp>>;
  let books: ProxyProcess;
  let web: ProxyProcess;
  let evil: ProxyProcess;

  beforeAll(async () => {
    console.time("before");
    await pki.start();
    app = await echoApp();
    books = await proxy({
      identity: pki.identity(BOOKS),
      inbound: {
        listen: "127.0.0.1:0",
        app: app.address,
        policy: { default: "all-authenticated" },
        rateLimit: {
          identity: { requestsPerSecond: SLOW, burst: 1 },
          overrides: [{ requestsPerSecond: SLOW, burst: 3, identities: [WEB] }],
        },
      },
    });
    const client = (id: string) =>
      proxy({
        identity: pki.identity(id),
        outbound: {
          listen: "127.0.0.1:0",
          services: [
            {
              name: "books",
              discovery: { static: [{ address: books.addresses.inbound, identity: BOOKS }] },
              retry: { on: [] },
            },
          ],
        },
      });
    [web, evil] = await Promise.all([client(WEB), client(EVIL)]);
    await Promise.all([ready(books), ready(web), ready(evil)]);
  });

  afterAll(async () => {
    console.time("after");
    await Promise.all([web?.stop(), evil?.stop(), books?.stop()]);
    await app?.close();
    await pki.stop();
  });

  it("limits each verified mesh-client-id apart, with overrides for named identities", async () => {
    const statuses = async (p: ProxyProcess, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++)
        out.push((await get(p.addresses.outbound as string, "books", "/")).status);
      return out;
    };
    // evil may send 1 (identity limit); web 3 (its override); one client's use is not the other's.
    expect(await statuses(evil, 3)).toEqual([200, 429, 429]);
    expect(await statuses(web, 4)).toEqual([200, 200, 200, 429]);
    const refused = await get(evil.addresses.outbound as string, "books", "/");
    expect(refused.headers["mesh-proxy-error"]).toBe("rate limited (identity limit)");
    const metrics = (await admin(books, "/metrics")).body;
    expect(metric(metrics, "mesh_ratelimit_rejected_total", 'limit="identity"')).toBe(3);
    expect(metric(metrics, "mesh_ratelimit_rejected_total", 'limit="override"')).toBe(1);
  });
});
