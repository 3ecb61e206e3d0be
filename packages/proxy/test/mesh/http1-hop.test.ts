import type { IncomingMessage, ServerResponse } from "node:http";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProxyProcess } from "../helpers.js";
import { admin, BOOKS, CountingRelay, get, metric, Pki, proxy, ready, WEB } from "./fixtures.js";

/**
 * `outbound.meshHttp1: http1`: HTTP/1 requests cross to a meshed endpoint over a pool of
 * mTLS HTTP/1.1 keep-alive connections (at most `connectionsPerEndpoint`), not multiplexed
 * on one HTTP/2 connection; HTTP/2 clients still cross on HTTP/2. Real processes: issuer,
 * web's outbound → counting relay → books' inbound → an app that holds requests until
 * released, so the number of connections the hop needs is known.
 */
describe("HTTP/1.1 hop between proxies (meshHttp1: http1)", () => {
  const pki = new Pki();
  let books: ProxyProcess;
  let web: ProxyProcess;
  let relay: CountingRelay;
  let app: http.Server;
  const held: { req: IncomingMessage; res: ServerResponse }[] = [];
  let onHeld: () => void = () => undefined;
  const answer = ({ req, res }: (typeof held)[number]) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ httpVersion: req.httpVersion, headers: req.headers }));
  };

  beforeAll(async () => {
    await pki.start();
    app = http.createServer((req, res) => {
      req.resume();
      if (req.headers["x-hold"] === undefined) return answer({ req, res });
      held.push({ req, res });
      onHeld();
    });
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    books = await proxy({
      identity: pki.identity(BOOKS),
      inbound: {
        listen: "127.0.0.1:0",
        app: `127.0.0.1:${(app.address() as AddressInfo).port}`,
        appProtocol: "http1",
        policy: { default: "all-authenticated" },
      },
    });
    relay = new CountingRelay(books.addresses.inbound as string);
    const viaRelay = await relay.listen();
    web = await proxy({
      identity: pki.identity(WEB),
      outbound: {
        listen: "127.0.0.1:0",
        meshHttp1: "http1",
        connectionsPerEndpoint: 3,
        services: [
          { name: "books", discovery: { static: [{ address: viaRelay, identity: BOOKS }] } },
        ],
      },
    });
    await Promise.all([ready(books), ready(web)]);
  });

  afterAll(async () => {
    await Promise.all([books?.stop(), web?.stop()]);
    await Promise.all([relay?.close(), new Promise((r) => app?.close(r)), pki.stop()]);
  });

  it("sends HTTP/1 requests over at most connectionsPerEndpoint mTLS HTTP/1.1 connections", async () => {
    const out = web.addresses.outbound as string;
    // Three requests held at the app at once need three connections on an HTTP/1.1 hop.
    const threeHeld = new Promise<void>((resolve) => {
      onHeld = () => held.length === 3 && resolve();
    });
    const responses = Array.from({ length: 12 }, () =>
      get(out, "books", "/", { "x-hold": "1", "mesh-client-id": "spiffe://example.org/forged" }),
    );
    await threeHeld;
    expect(relay.accepted).toBe(3);
    // Release everything: the other nine queue on the same three connections.
    onHeld = () => answer(held.at(-1)!);
    for (const h of held.splice(0)) answer(h);
    const results = await Promise.all(responses);
    for (const r of results) {
      expect(r.status).toBe(200);
      const seen = JSON.parse(r.body) as { httpVersion: string; headers: Record<string, string> };
      expect(seen.httpVersion).toBe("1.1");
      expect(seen.headers["mesh-client-id"]).toBe(WEB);
      // Nothing to restore: the request crossed as HTTP/1.1.
      expect(seen.headers["mesh-orig-proto"]).toBeUndefined();
    }
    expect(relay.accepted).toBe(3);

    const wm = (await admin(web, "/metrics")).body;
    expect(metric(wm, "outbound_tls_connections_total", `server_id="${BOOKS}"`)).toBe(3);
    expect(
      metric(wm, "request_total", 'direction="outbound"', 'tls="true"', `server_id="${BOOKS}"`),
    ).toBe(12);
    const bm = (await admin(books, "/metrics")).body;
    expect(
      metric(bm, "request_total", 'direction="inbound"', 'tls="true"', `client_id="${WEB}"`),
    ).toBe(12);
    const endpoints = JSON.parse((await admin(web, "/endpoints")).body) as unknown;
    expect(JSON.stringify(endpoints)).toContain('"protocol":"mtls-http1"');
  });

  it("still carries HTTP/2 clients on one multiplexed mTLS HTTP/2 connection", async () => {
    const before = relay.accepted;
    const session = http2.connect(`http://${web.addresses.outbound}`);
    try {
      const one = () =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const s = session.request({ ":path": "/", ":authority": "books" }, { endStream: true });
          let body = "";
          let status = 0;
          s.setEncoding("utf8");
          s.on("response", (h) => (status = Number(h[":status"])));
          s.on("data", (c: string) => (body += c));
          s.on("end", () => resolve({ status, body }));
          s.on("error", reject);
        });
      const results = await Promise.all(Array.from({ length: 10 }, one));
      for (const r of results) {
        expect(r.status, r.body).toBe(200);
        expect(JSON.parse(r.body).headers["mesh-client-id"]).toBe(WEB);
      }
    } finally {
      session.close();
    }
    expect(relay.accepted - before).toBe(1);
  });
});
