import type http2 from "node:http2";
import { Readable } from "node:stream";
import { Agent, type Dispatcher, fetch, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { channels, type RetryPolicyOptions, retry } from "../src/index.js";
import { collect } from "./support/events.js";
import { failFirst, h2cServer, type Plan, sha256, type TestServer } from "./support/servers.js";

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

  it("retries a gRPC error that arrives in trailers: the failed attempt's bytes never reach the caller", async () => {
    const s = await server(({ n, res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      r.writeHead(200, grpcHeaders);
      r.addTrailers({ "grpc-status": n === 0 ? "13" : "0" });
      r.end(message(n === 0 ? "poison" : "good"));
    });
    const res = await request(s.origin, {
      method: "POST",
      headers: { ...grpcHeaders, "mesh-retryable": "true" },
      body: message("req"),
      dispatcher: agent(),
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.equals(message("good"))).toBe(true);
    expect(s.seen).toHaveLength(2);
  });

  it("streams a gRPC response larger than maxGrpcBufferBytes and then never retries it", async () => {
    const big = message("x".repeat(4096));
    const s = await server(({ res }) => {
      const r = res as unknown as http2.Http2ServerResponse;
      r.writeHead(200, grpcHeaders);
      r.addTrailers({ "grpc-status": "14" });
      r.end(big);
    });
    const res = await request(s.origin, {
      method: "POST",
      headers: { ...grpcHeaders, "mesh-retryable": "true" },
      body: message("req"),
      dispatcher: agent({ maxGrpcBufferBytes: 1024 }),
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.equals(big)).toBe(true);
    expect(res.trailers["grpc-status"]).toBe("14");
    expect(s.seen).toHaveLength(1);
  });

  it("works with undici 8 fetch over HTTP/2", async () => {
    const s = await server(failFirst(1));
    const res = await fetch(s.origin, { method: "PUT", body: "payload", dispatcher: agent() });
    expect(await res.text()).toBe("ok 1");
    expect(s.seen.map((x) => x.bodySha256)).toEqual([sha256("payload"), sha256("payload")]);
  });
});
