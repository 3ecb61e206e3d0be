import { describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  GoldenSignals,
  LATENCY_BUCKETS_MS,
  MetricsError,
  Registry,
  renderPrometheus,
} from "../src/index.js";
import { ACCEPTED_LINT, promtoolCheck } from "./helpers/promtool.js";

function manualClock(t = 0) {
  return {
    t,
    now() {
      return this.t;
    },
  };
}

describe("Prometheus exposition", () => {
  it("renders HELP/TYPE, escaped label values and cumulative histogram buckets that promtool accepts", async ({
    skip,
  }) => {
    skip(missingPeer("promtool"), "needs promtool");
    const signals = new GoldenSignals();
    const h = signals.http({
      direction: "outbound",
      authority: 'we"ird\\host\nname:80',
      tls: true,
      serverId: "spiffe://td/ns/a/sa/b",
      route: "GET /items",
    });
    h.request();
    h.response(200, -1, 3);
    h.request();
    h.response(503, -1, 12);
    h.request();
    h.response(200, 14, 0.5);
    h.request();
    h.streamError(70000);
    const t = signals.tcp({ direction: "inbound", authority: "10.0.0.1:8080", tls: false });
    t.open();
    t.read(100);
    t.write(50);
    t.close(250, true);
    t.open();
    const text = renderPrometheus(signals.registry);

    expect(text).toContain(
      "# HELP request_total Requests started.\n# TYPE request_total counter\n",
    );
    expect(text).toContain(
      'request_total{direction="outbound",authority="we\\"ird\\\\host\\nname:80",tls="true",server_id="spiffe://td/ns/a/sa/b",route="GET /items"} 4\n',
    );
    const l =
      'direction="outbound",authority="we\\"ird\\\\host\\nname:80",tls="true",server_id="spiffe://td/ns/a/sa/b",route="GET /items"';
    expect(text).toContain(`response_total{${l},classification="success",status_code="200"} 1\n`);
    expect(text).toContain(`response_total{${l},classification="failure",status_code="503"} 1\n`);
    expect(text).toContain(
      `response_total{${l},classification="failure",status_code="200",grpc_status_code="14"} 1\n`,
    );
    expect(text).toContain(`response_total{${l},classification="failure"} 1\n`);
    // cumulative buckets: 3ms lands in le=3, 0.5 in le=1 (both status 200)
    expect(text).toContain(`response_latency_ms_bucket{${l},status_code="200",le="1"} 1\n`);
    expect(text).toContain(`response_latency_ms_bucket{${l},status_code="200",le="3"} 2\n`);
    expect(text).toContain(`response_latency_ms_bucket{${l},status_code="200",le="+Inf"} 2\n`);
    expect(text).toContain(`response_latency_ms_sum{${l},status_code="200"} 3.5\n`);
    expect(text).toContain(`response_latency_ms_count{${l},status_code="200"} 2\n`);
    // 70 s is beyond the last bound: only +Inf holds it
    expect(text).toContain(`response_latency_ms_bucket{${l},le="50000"} 0\n`);
    expect(text).toContain(`response_latency_ms_bucket{${l},le="+Inf"} 1\n`);
    const tl = 'direction="inbound",authority="10.0.0.1:8080",tls="no_identity"';
    expect(text).toContain(`tcp_open_total{${tl}} 2\n`);
    expect(text).toContain(`tcp_close_total{${tl},classification="failure"} 1\n`);
    expect(text).toContain(`tcp_open_connections{${tl}} 1\n`);
    expect(text).toContain(`tcp_read_bytes_total{${tl}} 100\n`);
    expect(text).toContain(`tcp_write_bytes_total{${tl}} 50\n`);
    expect(text).toContain(`tcp_connection_duration_ms_bucket{${tl},le="300"} 1\n`);

    const check = await promtoolCheck(text);
    expect(check.problems.filter((p) => !ACCEPTED_LINT.test(p))).toEqual([]);
    expect(check.code).not.toBe(1); // 1 = parse error; 3 = lint only (the accepted one)
    expect(check.problems).toContain(
      "response_latency_ms metric names should not contain abbreviated units",
    );
  });

  it("uses Linkerd's latency buckets", () => {
    expect(LATENCY_BUCKETS_MS).toEqual([
      1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000,
      10000, 20000, 30000, 40000, 50000,
    ]);
  });

  it("promtool reports a broken exposition (the check is real)", async ({ skip }) => {
    skip(missingPeer("promtool"), "needs promtool");
    const check = await promtoolCheck('request_total{a="x} 1\n');
    expect(check.code).toBe(1);
  });

  it("rejects invalid names and duplicate families with stable codes", () => {
    const r = new Registry();
    r.counter({ name: "a_total", help: "a" });
    expect(() => r.counter({ name: "a_total", help: "a" })).toThrow(
      expect.objectContaining({ code: "MESH_METRICS_DUPLICATE_METRIC" }),
    );
    expect(() => r.counter({ name: "1bad", help: "x" })).toThrow(MetricsError);
    expect(() => r.counter({ name: "b_total", help: "x", labelNames: ["le"] })).toThrow(
      'labelNames: expected a Prometheus label name (not "le" or "__*"), got "le"',
    );
    expect(() => r.histogram({ name: "h", help: "x", buckets: [2, 1] })).toThrow(
      "buckets[1]: expected a finite number greater than the previous bound, got 1",
    );
    const c = r.counter({ name: "c_total", help: "x", labelNames: ["a"] });
    expect(() => c.get({ b: "1" })).toThrow(
      expect.objectContaining({ code: "MESH_METRICS_LABEL_MISMATCH" }),
    );
  });

  it("validates options in the <path>: expected <what>, got <value> format", () => {
    expect(() => new GoldenSignals({ maxAuthorities: 0 })).toThrow(
      new RangeError("maxAuthorities: expected an integer >= 1, got 0"),
    );
    expect(() => new GoldenSignals({ idleTimeoutMs: "x" as never })).toThrow(
      new TypeError('idleTimeoutMs: expected a number > 0, got "x"'),
    );
    const s = new GoldenSignals();
    expect(() => s.http({ direction: "sideways" as never })).toThrow(
      new TypeError('labels.direction: expected "inbound" or "outbound", got "sideways"'),
    );
  });
});

describe("bounded cardinality", () => {
  it("caps distinct authorities, maps the rest to 'other' and counts the overflow", () => {
    const signals = new GoldenSignals({ maxAuthorities: 2, maxRoutes: 1 });
    for (const a of ["a:80", "b:80", "c:80", "d:80", "a:80"])
      signals.http({ direction: "outbound", authority: a }).request();
    signals.http({ direction: "outbound", authority: "a:80", route: "r1" }).request();
    signals.http({ direction: "outbound", authority: "a:80", route: "r2" }).request();
    const text = renderPrometheus(signals.registry);
    expect(text).toContain('request_total{direction="outbound",authority="a:80"} 2\n');
    expect(text).toContain('request_total{direction="outbound",authority="b:80"} 1\n');
    expect(text).toContain('request_total{direction="outbound",authority="other"} 2\n');
    expect(text).not.toContain("c:80");
    expect(text).toContain(
      'request_total{direction="outbound",authority="a:80",route="other"} 1\n',
    );
    expect(text).toContain('mesh_metrics_label_overflow_total{label="authority"} 2\n');
    expect(text).toContain('mesh_metrics_label_overflow_total{label="route"} 1\n');
  });

  it("expires label sets idle for 10 minutes (injected clock), freeing capped values; held handles re-register", () => {
    const clock = manualClock();
    const signals = new GoldenSignals({ clock, maxAuthorities: 1 });
    const a = signals.http({ direction: "inbound", authority: "a:80" });
    a.request();
    const conn = signals.tcp({ direction: "inbound", authority: "a:80" });
    conn.open();
    renderPrometheus(signals.registry); // sweep at t=0 sees the use
    clock.t = 599_999;
    expect(renderPrometheus(signals.registry)).toContain(
      'request_total{direction="inbound",authority="a:80"} 1',
    );
    clock.t = 600_000;
    let text = renderPrometheus(signals.registry);
    expect(text).not.toContain("request_total{");
    // an open connection keeps its TCP series alive
    expect(text).toContain('tcp_open_connections{direction="inbound",authority="a:80"} 1');
    conn.close(10);
    clock.t = 1_300_000;
    renderPrometheus(signals.registry);
    clock.t = 1_900_000;
    text = renderPrometheus(signals.registry);
    expect(text).not.toContain("tcp_open_total{");
    // the cap slot was freed: a new authority is admitted
    signals.http({ direction: "inbound", authority: "b:80" }).request();
    // and the stale handle still records, re-registering its series
    a.request();
    text = renderPrometheus(signals.registry);
    expect(text).toContain('request_total{direction="inbound",authority="b:80"} 1');
    expect(text).toContain('request_total{direction="inbound",authority="a:80"} 1');
  });
});
