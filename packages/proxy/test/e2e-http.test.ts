import http from "node:http";
import { text } from "node:stream/consumers";
import { Client, request } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { h1App, type ProxyProcess, proxyPair } from "./helpers.js";

describe("client → outbound → inbound → app", () => {
  let app: Awaited<ReturnType<typeof h1App>>;
  let inbound: ProxyProcess;
  let outbound: ProxyProcess;

  beforeAll(async () => {
    app = await h1App((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/trailers") {
          res.writeHead(200, { trailer: "x-checksum" });
          res.write("body");
          res.addTrailers({ "x-checksum": "abc" });
          res.end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json", "x-app": "yes" });
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
    });
    ({ inbound, outbound } = await proxyPair(app.address, {
      name: "books",
      authorities: ["books", "books:8080"],
    }));
  });

  afterAll(async () => {
    await Promise.all([inbound?.stop(), outbound?.stop()]);
    await app?.close();
  });

  test("HTTP/1.1 origin-form: method, path, headers and body arrive; hop-by-hop stripped; via added", async () => {
    const [port, host] = [
      Number((outbound.addresses.outbound as string).split(":")[1]),
      "127.0.0.1",
    ];
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({
        host,
        port,
        method: "POST",
        path: "/orders/7?x=1",
        headers: {
          host: "books:8080",
          "x-user": "ada",
          "keep-alive": "timeout=5",
          connection: "keep-alive, x-secret",
          "x-secret": "no",
        },
      });
      req.on("response", resolve).on("error", reject);
      req.end("hello");
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-app"]).toBe("yes");
    const seen = JSON.parse(await text(res)) as {
      method: string;
      url: string;
      headers: Record<string, string>;
      body: string;
    };
    expect(seen.method).toBe("POST");
    expect(seen.url).toBe("/orders/7?x=1");
    expect(seen.body).toBe("hello");
    expect(seen.headers["x-user"]).toBe("ada");
    expect(seen.headers.host).toBe("books:8080");
    expect(seen.headers["x-secret"]).toBeUndefined();
    expect(seen.headers["keep-alive"]).toBeUndefined();
    expect(seen.headers.via).toMatch(/^1\.1 mesh-[0-9a-f]+-outbound, 1\.1 mesh-[0-9a-f]+-inbound$/);
  });

  test("absolute-form (HTTP_PROXY style) is routed by the URL's authority", async () => {
    const client = new Client(`http://${outbound.addresses.outbound}`);
    const res = await client.request({
      method: "GET",
      path: "http://books:8080/abs",
      headers: { host: "books:8080" },
    });
    expect(res.statusCode).toBe(200);
    const seen = (await res.body.json()) as { url: string };
    expect(seen.url).toBe("/abs");
    await client.close();
  });

  test("response trailers pass through HTTP/1.1", async () => {
    const res = await request(`http://${outbound.addresses.outbound}/trailers`, {
      headers: { host: "books", te: "trailers" },
    });
    expect(await res.body.text()).toBe("body");
    expect(res.trailers["x-checksum"]).toBe("abc");
  });
});
