import type { Http2Server } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { GoldenSignals, instrumentServer, metrics, renderPrometheus } from "../src/index.js";
import { type ManualClock, manualClock, sampleOf, waitFor } from "./helpers/net.js";

const identity = (b: Buffer) => b;
const service = {
  echo: {
    path: "/test.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A gRPC frame: 1 byte compressed flag, 4 bytes length, message. */
function frame(msg: string): Buffer {
  const body = Buffer.from(msg);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

async function startGrpc(clock: ManualClock, signals: GoldenSignals) {
  const server = new grpc.Server();
  server.addService(service, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const [code, delay] = call.request.toString().split(":").map(Number) as [number, number];
      clock.t += delay;
      if (code === 0) cb(null, Buffer.from("ok"));
      else cb({ code, details: "nope" });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  // grpc-js exposes no hook to its node:http2 servers; the test reaches its private map.
  const h2servers = (server as unknown as { http2Servers: Map<Http2Server, unknown> }).http2Servers;
  for (const h2 of h2servers.keys()) instrumentServer(h2, { signals, clock });
  cleanups.push(() => server.forceShutdown());
  return port;
}

describe("gRPC", () => {
  it("classifies by grpc-status (trailers and trailers-only) on a @grpc/grpc-js server and client", async () => {
    const clock = manualClock();
    const signals = new GoldenSignals();
    const port = await startGrpc(clock, signals);
    const Client = grpc.makeGenericClientConstructor(service, "Echo");
    const client = new Client(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as {
      echo(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
      close(): void;
    };
    cleanups.push(() => client.close());
    const call = (msg: string) =>
      new Promise<number>((resolve) =>
        client.echo(Buffer.from(msg), (err) => resolve(err ? err.code : 0)),
      );
    const mix = ["0:2", "0:2", "0:30", "14:4", "5:100", "2:1"];
    for (const m of mix) expect(await call(m)).toBe(Number(m.split(":")[0]));

    await waitFor(
      () =>
        sampleOf(
          renderPrometheus(signals.registry),
          'response_total{direction="inbound",authority="127.0.0.1:' +
            port +
            '",tls="no_identity",classification="failure",status_code="200",grpc_status_code="2"}',
        ) === 1,
    );
    const text = renderPrometheus(signals.registry);
    const l = `direction="inbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    expect(sampleOf(text, `request_total{${l}}`)).toBe(6);
    expect(
      sampleOf(
        text,
        `response_total{${l},classification="success",status_code="200",grpc_status_code="0"}`,
      ),
    ).toBe(3);
    for (const code of [14, 5, 2]) {
      expect(
        sampleOf(
          text,
          `response_total{${l},classification="failure",status_code="200",grpc_status_code="${code}"}`,
        ),
      ).toBe(1);
    }
    expect(sampleOf(text, `response_latency_ms_bucket{${l},status_code="200",le="2"}`)).toBe(3);
    expect(sampleOf(text, `response_latency_ms_bucket{${l},status_code="200",le="5"}`)).toBe(4);
    expect(sampleOf(text, `response_latency_ms_bucket{${l},status_code="200",le="30"}`)).toBe(5);
    expect(sampleOf(text, `response_latency_ms_bucket{${l},status_code="200",le="100"}`)).toBe(6);
  });

  it("the undici interceptor reads grpc-status from trailers of a grpc-js server (h2c)", async () => {
    const clock = manualClock();
    const port = await startGrpc(clock, new GoldenSignals());
    const signals = new GoldenSignals();
    const agent = new Agent({ allowH2: true, useH2c: true } as never).compose(
      metrics({ signals, clock }),
    );
    cleanups.push(() => agent.close());
    for (const m of ["0:1", "14:3", "0:1"]) {
      const res = await request(`http://127.0.0.1:${port}/test.Echo/Echo`, {
        method: "POST",
        dispatcher: agent,
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: frame(m),
      });
      await res.body.arrayBuffer();
    }
    const text = renderPrometheus(signals.registry);
    const l = `direction="outbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    expect(
      sampleOf(
        text,
        `response_total{${l},classification="success",status_code="200",grpc_status_code="0"}`,
      ),
    ).toBe(2);
    expect(
      sampleOf(
        text,
        `response_total{${l},classification="failure",status_code="200",grpc_status_code="14"}`,
      ),
    ).toBe(1);
    expect(sampleOf(text, `response_latency_ms_bucket{${l},status_code="200",le="1"}`)).toBe(2);
    expect(sampleOf(text, `response_latency_ms_bucket{${l},status_code="200",le="3"}`)).toBe(3);
  });
});
