import type http2 from "node:http2";
import { Readable } from "node:stream";
import { meshChannels } from "@mesh/core";
import { Agent, type Dispatcher, fetch, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { type RetryPolicyOptions, retry } from "../src/index.js";
import { collect } from "./support/events.js";
import { failFirst, h2cServer, type Plan, sha256, type TestServer } from "./support/servers.js";

const channels = meshChannels.retry;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function server(plan: Plan): Promise<TestServer> {
  const s = await h2cServer(plan);
  open.push(s);
  return s;
}

function agent(extra: RetryPolicyOptions = {}): Dispatcher {
  // h2c with prior knowledge: HTTP/2 over cleartext TCP.
  // (useH2c is missing from undici's option types, though the runtime supports it.)
  const a = new Agent({ allowH2: true, useH2c: true } as ConstructorParameters<typeof Agent>[0]);
  open.push({ close: () => a.destroy() });
  return a.compose(
    retry({ backoff: { base: 0, max: 0 }, budget: { minRetriesPerSecond: 1000 }, ...extra }),
  );
}

const grpcHeaders = { "content-type": "application/grpc+proto" };
/** A length-prefixed gRPC message. */
const message = (payload: string) => {
  const body = Buffer.from(payload);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
};

describe("retry() over HTTP/2 (h2c, undici 8)", () => {
  it("retries 503 and replays a streamed body byte-exact", async () => {
    const s = await server(failFirst(1));
    const chunks = Array.from({ length: 16 }, (_, i) => Buffer.alloc(2048, i));
    const res = await request(s.origin, {
      method: "PUT",
      body: Readable.from(chunks),
      dispatcher: agent(),
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("ok 1");
    const expected = sha256(Buffer.concat(chunks));
    expect(s.seen.map((x) => x.bodySha256)).toEqual([expected, expected]);
  });

  it("retries a stream reset before any response byte", async () => {
    const s = await server(({ n, res }) => {
      if (n === 0)
        (res as unknown as http2.Http2ServerResponse).stream.close(2 /* INTERNAL_ERROR */);
      else res.end("after reset");
    });
    const res = await request(s.origin, { dispatcher: agent() });
    expect(await res.body.text()).toBe("after reset");
    expect(s.seen).toHaveLength(2);
  });

  it("retries a trailers-only gRPC error (grpc-status in headers) when marked retryable", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      if (n === 0) {
        r.writeHead(200, { ...grpcHeaders, "grpc-status": "14", "grpc-message": "down" });
        r.end();
      } else {
        r.writeHead(200, grpcHeaders);
        r.addTrailers({ "grpc-status": "0" });
        r.end(message("hello"));
      }
    });
    const ev = collect([channels.retry]);
    const res = await request(`${s.origin}/pkg.Svc/Method`, {
      method: "POST",
      headers: { ...grpcHeaders, te: "trailers", "mesh-retryable": "true" },
      body: message("req"),
      dispatcher: agent(),
    });
    ev.stop();
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.equals(message("hello"))).toBe(true);
    expect(res.trailers["grpc-status"]).toBe("0");
    expect(ev.events[0]!.message).toMatchObject({ reason: "grpc-unavailable" });
    expect(s.seen.map((x) => x.bodySha256)).toEqual([
      sha256(message("req")),
      sha256(message("req")),
    ]);
  });

  it("retries a gRPC error in trailers that follow headers without a message", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      r.writeHead(200, grpcHeaders);
      if (n === 0) {
        r.addTrailers({ "grpc-status": "14" });
        r.end();
      } else {
        r.addTrailers({ "grpc-status": "0" });
        r.end(message("good"));
      }
    });
    const res = await request(s.origin, {
      method: "POST",
      headers: grpcHeaders,
      body: message("req"),
      dispatcher: agent({ grpc: ["unavailable"] }),
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.equals(message("good"))).toBe(true);
    expect(res.trailers["grpc-status"]).toBe("0");
    expect(s.seen).toHaveLength(2);
  });

  it("never retries a gRPC call once a response message arrived: it streams at once", async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    const s = await server(async ({ res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      r.writeHead(200, grpcHeaders);
      r.write(message("first"));
      await released; // the caller must see the first message before the call ends
      r.addTrailers({ "grpc-status": "14" });
      r.end(message("second"));
    });
    const res = await request(s.origin, {
      method: "POST",
      headers: grpcHeaders,
      body: message("req"),
      dispatcher: agent({ grpc: ["unavailable"] }),
    });
    const chunks: Buffer[] = [];
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer);
      release();
    }
    expect(Buffer.concat(chunks).equals(Buffer.concat([message("first"), message("second")]))).toBe(
      true,
    );
    expect(res.trailers["grpc-status"]).toBe("14");
    expect(s.seen).toHaveLength(1);
  });

  it("a gRPC call (POST) is retried on the policy's gRPC codes without being marked retryable", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      if (n % 2 === 0) {
        r.writeHead(200, { ...grpcHeaders, "grpc-status": "14", "grpc-message": "down" });
        r.end();
      } else {
        r.writeHead(200, grpcHeaders);
        r.addTrailers({ "grpc-status": "0" });
        r.end(message(`ok ${n}`));
      }
    });
    const dispatcher = agent({ grpc: ["unavailable"] });
    for (let i = 0; i < 10; i++) {
      const res = await request(`${s.origin}/pkg.Svc/Method`, {
        method: "POST",
        headers: ["content-type", "application/grpc", "te", "trailers"],
        body: message("req"),
        dispatcher,
      });
      await res.body.arrayBuffer();
      expect(res.trailers["grpc-status"]).toBe("0");
    }
    expect(s.seen).toHaveLength(20);
  });

  it("a gRPC call retried on its status alone: other statuses, 5xx and resets are not retried", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      if (n === 0) {
        r.writeHead(200, { ...grpcHeaders, "grpc-status": "13" }); // INTERNAL: not listed
        r.end();
      } else if (n === 1) {
        r.writeHead(500, { "content-type": "text/plain" }); // maps to UNKNOWN
        r.end("boom");
      } else r.stream.close(2 /* INTERNAL_ERROR */);
    });
    const dispatcher = agent({ grpc: ["unavailable"] });
    const send = () =>
      request(s.origin, {
        method: "POST",
        headers: grpcHeaders,
        body: message("req"),
        dispatcher,
      });
    const internal = await send();
    await internal.body.arrayBuffer();
    expect(internal.headers["grpc-status"]).toBe("13");
    const http500 = await send();
    expect(http500.statusCode).toBe(500);
    await http500.body.arrayBuffer();
    await expect(send()).rejects.toThrow();
    expect(s.seen).toHaveLength(3);
  });

  it("honours grpc-retry-pushback-ms: waits as asked, and a negative value stops retries", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      const stop = r.req.headers["x-case"] === "stop";
      const pushback = stop ? "-1" : n === 0 ? "150" : undefined;
      if (pushback !== undefined) {
        r.writeHead(200, {
          ...grpcHeaders,
          "grpc-status": "14",
          "grpc-retry-pushback-ms": pushback,
        });
        r.end();
      } else {
        r.writeHead(200, grpcHeaders);
        r.addTrailers({ "grpc-status": "0" });
        r.end(message("good"));
      }
    });
    // Backoff 0 (see agent()): only the pushback can delay the retry.
    const dispatcher = agent({ grpc: ["unavailable"] });
    const started = performance.now();
    const waited = await request(s.origin, {
      method: "POST",
      headers: grpcHeaders,
      body: message("req"),
      dispatcher,
    });
    await waited.body.arrayBuffer();
    expect(waited.trailers["grpc-status"]).toBe("0");
    expect(performance.now() - started).toBeGreaterThanOrEqual(145);
    const stopped = await request(s.origin, {
      method: "POST",
      headers: { ...grpcHeaders, "x-case": "stop" },
      body: message("req"),
      dispatcher,
    });
    await stopped.body.arrayBuffer();
    expect(stopped.headers["grpc-status"]).toBe("14");
    expect(s.seen).toHaveLength(3);
  });

  it("with the default gRPC list (not given explicitly) an unmarked gRPC call is not retried", async () => {
    const s = await server(({ res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      r.writeHead(200, { ...grpcHeaders, "grpc-status": "14" });
      r.end();
    });
    const res = await request(s.origin, {
      method: "POST",
      headers: grpcHeaders,
      body: message("req"),
      dispatcher: agent(),
    });
    await res.body.arrayBuffer();
    expect(res.headers["grpc-status"]).toBe("14");
    expect(s.seen).toHaveLength(1);
  });

  it("a plain POST is still never retried by default", async () => {
    const s = await server(failFirst(1));
    const res = await request(s.origin, { method: "POST", body: "x", dispatcher: agent() });
    expect(res.statusCode).toBe(503);
    await res.body.arrayBuffer();
    expect(s.seen).toHaveLength(1);
  });

  it("an HTTP 503 without grpc-status on a gRPC call counts as UNAVAILABLE", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      if (n === 0) {
        r.writeHead(503, { "content-type": "text/plain" });
        r.end("overloaded");
      } else {
        r.writeHead(200, grpcHeaders);
        r.addTrailers({ "grpc-status": "0" });
        r.end(message("good"));
      }
    });
    const res = await request(s.origin, {
      method: "POST",
      headers: grpcHeaders,
      body: message("req"),
      dispatcher: agent({ grpc: ["unavailable"], http: [] }),
    });
    expect(Buffer.from(await res.body.arrayBuffer()).equals(message("good"))).toBe(true);
    expect(s.seen).toHaveLength(2);
  });

  it("works with undici 8 fetch over HTTP/2", async () => {
    const s = await server(failFirst(1));
    const res = await fetch(s.origin, { method: "PUT", body: "payload", dispatcher: agent() });
    expect(await res.text()).toBe("ok 1");
    expect(s.seen.map((x) => x.bodySha256)).toEqual([sha256("payload"), sha256("payload")]);
  });
});
