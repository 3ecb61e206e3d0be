import http from "node:http";
import { propagation, SpanKind, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { Agent, request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { GoldenSignals, instrumentServer, metrics, renderPrometheus } from "../src/index.js";
import { close, listen, sampleOf, waitFor } from "./helpers/net.js";

afterAll(() => {
  trace.disable();
  propagation.disable();
});

describe("tracing at its default (on)", () => {
  it("adds nothing while no SDK is registered, and traces as soon as one is", async () => {
    const signals = new GoldenSignals();
    const seen: Array<string | undefined> = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.traceparent as string | undefined);
      res.end("ok");
    });
    instrumentServer(server, { signals });
    const port = await listen(server);
    const agent = new Agent().compose(metrics({ signals }));
    const get = async (headers: Record<string, string> = {}) => {
      const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent, headers });
      await res.body.text();
    };
    const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    try {
      await get();
      await get({ traceparent: incoming });
      // no SDK: no header invented, an incoming one passes through untouched
      expect(seen).toEqual([undefined, incoming]);

      const spans = new InMemorySpanExporter();
      trace.setGlobalTracerProvider(
        new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
      );
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
      await get();
      // the server span ends when its response has been flushed, maybe after the client read it
      await waitFor(() => spans.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER));
      const client = spans.getFinishedSpans().find((s) => s.kind === SpanKind.CLIENT)!;
      const srv = spans.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
      expect(seen[2]).toBe(`00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
      expect(srv.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    } finally {
      await agent.close();
      await close(server);
    }
    const l = `direction="inbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    expect(sampleOf(renderPrometheus(signals.registry), `request_total{${l}}`)).toBe(3);
  });
});
