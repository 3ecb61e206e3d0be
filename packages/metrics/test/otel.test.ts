import http from "node:http";
import { propagation, SpanKind, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { Agent, request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import {
  bridgeToOpenTelemetry,
  GoldenSignals,
  instrumentServer,
  metrics,
  renderPrometheus,
} from "../src/index.js";
import { close, listen, manualClock, sampleOf } from "./helpers/net.js";

const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(spans)],
});
trace.setGlobalTracerProvider(tracerProvider);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
afterAll(() => {
  trace.disable();
  propagation.disable();
});

describe("OpenTelemetry", () => {
  it("exports the same counts and buckets through an SDK's in-memory exporter", async () => {
    const clock = manualClock();
    const signals = new GoldenSignals();
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const detach = bridgeToOpenTelemetry(signals.registry, provider.getMeter("test"));
    const server = http.createServer((req, res) => {
      clock.t += 4;
      res.writeHead(req.url === "/fail" ? 500 : 200);
      res.end("x");
    });
    instrumentServer(server, { signals, clock });
    const port = await listen(server);
    const agent = new Agent();
    for (const path of ["/", "/", "/fail"]) {
      const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
      await res.body.text();
    }
    await reader.forceFlush();
    const text = renderPrometheus(signals.registry);
    const byName = new Map(
      exporter
        .getMetrics()
        .at(-1)!
        .scopeMetrics.flatMap((s) => s.metrics)
        .map((m) => [m.descriptor.name, m]),
    );
    const requestPoints = byName.get("request")!.dataPoints;
    expect(requestPoints).toHaveLength(1);
    expect(requestPoints[0]!.value).toBe(
      sampleOf(
        text,
        `request_total{direction="inbound",authority="127.0.0.1:${port}",tls="no_identity"}`,
      ),
    );
    expect(requestPoints[0]!.value).toBe(3);
    expect(requestPoints[0]!.attributes).toEqual({
      direction: "inbound",
      authority: `127.0.0.1:${port}`,
      tls: "no_identity",
    });
    const responses = byName.get("response")!.dataPoints;
    const failed = responses.find((p) => p.attributes.classification === "failure")!;
    expect(failed.value).toBe(1);
    expect(failed.attributes.status_code).toBe("500");
    expect(responses.find((p) => p.attributes.classification === "success")!.value).toBe(2);
    const latency = byName.get("response_latency_ms")!;
    expect(latency.descriptor.unit).toBe("ms");
    const ok = latency.dataPoints.find((p) => p.attributes.status_code === "200")!.value as {
      buckets: { boundaries: number[]; counts: number[] };
      count: number;
      sum: number;
    };
    expect(ok.count).toBe(2);
    expect(ok.sum).toBe(8);
    expect(ok.buckets.boundaries.slice(0, 6)).toEqual([1, 2, 3, 4, 5, 10]);
    expect(ok.buckets.counts[3]).toBe(2); // the le=4 bucket, as in the exposition
    expect(
      sampleOf(
        text,
        `response_latency_ms_bucket{direction="inbound",authority="127.0.0.1:${port}",tls="no_identity",status_code="200",le="4"}`,
      ),
    ).toBe(2);
    detach();
    await provider.shutdown();
    await agent.close();
    await close(server);
  });

  it("propagates W3C trace context: client span → traceparent → child server span", async () => {
    spans.reset();
    const signals = new GoldenSignals();
    let seen: string | undefined;
    const server = http.createServer((req, res) => {
      seen = req.headers.traceparent as string | undefined;
      res.end("ok");
    });
    instrumentServer(server, { signals });
    const port = await listen(server);
    const agent = new Agent().compose(metrics({ signals }));
    const res = await request(`http://127.0.0.1:${port}/a`, {
      dispatcher: agent,
      headers: { tracestate: "vendor=1" },
    });
    await res.body.text();
    await agent.close();
    await close(server);
    const finished = spans.getFinishedSpans();
    const client = finished.find((s) => s.kind === SpanKind.CLIENT)!;
    const srv = finished.find((s) => s.kind === SpanKind.SERVER)!;
    expect(seen).toBe(`00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
    expect(srv.spanContext().traceId).toBe(client.spanContext().traceId);
    expect(srv.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    expect(srv.attributes["http.response.status_code"]).toBe(200);
  });
});
