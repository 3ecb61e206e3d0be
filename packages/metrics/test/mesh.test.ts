import diagnostics_channel from "node:diagnostics_channel";
import { once } from "node:events";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { runUnobserved } from "@mesh/core";
import { afterEach, describe, expect, it } from "vitest";
import { missingPeer } from "../../../scripts/peers.mjs";
import {
  COUNTED_MESH_CHANNELS,
  Registry,
  renderPrometheus,
  subscribeMeshEvents,
} from "../src/index.js";
import { sampleOf } from "./helpers/net.js";
import { ACCEPTED_LINT, promtoolCheck } from "./helpers/promtool.js";

// The publishers (@mesh/retry, balancer, tls-identity, proxy) are not imported: like them,
// the test publishes on the named channels, exactly as ARCHITECTURE.md's table defines.
const publish = (name: string, payload: unknown) =>
  diagnostics_channel.channel(name).publish(payload);

let unsubscribe: (() => void) | undefined;
afterEach(() => unsubscribe?.());

describe("mesh diagnostics_channel events", () => {
  it("does not count events of unobserved (synthetic) traffic, down to the requests its servers serve", async () => {
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry);
    const attempt = (name: string) =>
      publish("mesh:retry:attempt", { name, attempt: 0, method: "GET", origin: "o", path: "/" });
    // A server listening inside the scope: its requests are in it too, as the warm-up's are.
    const server = createServer((_req, res) => {
      attempt("synthetic");
      res.end();
    });
    await runUnobserved(async () => {
      attempt("synthetic");
      await Promise.resolve();
      attempt("synthetic");
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
    });
    const { port } = server.address() as AddressInfo;
    // The client is outside the scope; the server's handler is not.
    await new Promise<void>((resolve, reject) =>
      request({ port, host: "127.0.0.1" }, (res) => res.resume().on("end", resolve))
        .on("error", reject)
        .end(),
    );
    server.close();
    attempt("real");
    const t = renderPrometheus(registry);
    expect(t).not.toContain("synthetic");
    expect(sampleOf(t, 'mesh_retry_requests_total{name="real"}')).toBe(1);
  });

  it("counts original requests per retry policy, retries and hedges not included", () => {
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry);
    const attempt = (name: string, n: number) =>
      publish("mesh:retry:attempt", { name, attempt: n, method: "GET", origin: "o", path: "/" });
    for (let i = 0; i < 3; i++) attempt("books", 0);
    attempt("books", 1);
    attempt("authors", 0);
    attempt("books", 0);
    const t = renderPrometheus(registry);
    expect(sampleOf(t, 'mesh_retry_requests_total{name="books"}')).toBe(4);
    expect(sampleOf(t, 'mesh_retry_requests_total{name="authors"}')).toBe(1);
  });

  it("shows where a zone-local balancer picks, and why it switched", () => {
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry);
    const zone = (state: string, reason: string) =>
      publish("mesh:balancer:zone", {
        balancer: "b",
        zone: "z1",
        state,
        reason,
        localReady: 0,
        localPending: 0,
      });
    zone("spillover", "no-local-endpoint");
    zone("local", "recovered");
    zone("sideways", "recovered");
    const t = renderPrometheus(registry);
    expect(sampleOf(t, 'mesh_balancer_zone_state{balancer="b",zone="z1",state="local"}')).toBe(1);
    expect(sampleOf(t, 'mesh_balancer_zone_state{balancer="b",zone="z1",state="spillover"}')).toBe(
      0,
    );
    expect(
      sampleOf(
        t,
        'mesh_balancer_zone_transitions_total{balancer="b",zone="z1",state="spillover",reason="no-local-endpoint"}',
      ),
    ).toBe(1);
    expect(sampleOf(t, 'mesh_metrics_invalid_events_total{channel="mesh:balancer:zone"}')).toBe(1);
  });

  it("turns retry, breaker, balancer, identity and authz events into series", async ({ skip }) => {
    skip(missingPeer("promtool"), "needs promtool");
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry);
    for (const c of COUNTED_MESH_CHANNELS)
      expect(diagnostics_channel.channel(c).hasSubscribers).toBe(true);

    const origin = "http://b:80";
    publish("mesh:retry:attempt", { name: "web", attempt: 0, method: "GET", origin, path: "/" });
    publish("mesh:retry:attempt", { name: "web", attempt: 1, method: "GET", origin, path: "/" });
    publish("mesh:retry:retry", {
      name: "web",
      attempt: 1,
      reason: "status 503",
      delayMs: 25,
      origin,
    });
    publish("mesh:retry:budget-exhausted", { name: "web", reason: "status 503", origin });
    publish("mesh:retry:limit-exceeded", { name: "web", reason: "status 502", origin });
    publish("mesh:retry:timeout", { name: "web", kind: "per-try", timeoutMs: 100, origin });
    publish("mesh:retry:breaker", { name: "web", state: "open", previous: "closed" });
    publish("mesh:retry:breaker-rejected", { name: "web" });
    publish("mesh:retry:breaker-rejected", { name: "web" });
    publish("mesh:retry:hedge", { name: "web", attempt: 1, origin });
    publish("mesh:retry:hedge", { name: "web", attempt: 2, origin });
    publish("mesh:retry:hedge-won", { name: "web", attempt: 1, origin });
    publish("mesh:balancer:endpoint", {
      balancer: "b",
      address: "10.0.0.1:80",
      state: "ready",
      cost: 30,
      pending: 0,
    });
    publish("mesh:balancer:endpoint", {
      balancer: "b",
      address: "10.0.0.2:80",
      state: "ready",
      cost: 30,
      pending: 0,
    });
    publish("mesh:balancer:endpoint", {
      balancer: "b",
      address: "10.0.0.1:80",
      state: "ejected",
      reason: "failure-accrual",
      cost: 90.5,
      pending: 2,
    });
    publish("mesh:balancer:endpoint", {
      balancer: "b",
      address: "10.0.0.2:80",
      state: "removed",
      cost: 30,
      pending: 0,
    });
    publish("mesh:balancer:fail-fast", { balancer: "b", waitedMs: 3000 });
    publish("mesh:identity:svid", {
      spiffeId: "spiffe://td/ns/a/sa/web",
      notBefore: 1_700_000_000_000,
      notAfter: 1_700_086_400_000,
      serialNumber: "01",
      source: "issuer",
    });
    publish("mesh:identity:refresh-failed", {
      spiffeId: "spiffe://td/ns/a/sa/web",
      error: new Error("x"),
      retryInMs: 1000,
    });
    publish("mesh:identity:issued", { spiffeId: "spiffe://td/ns/a/sa/x", notAfter: 1 });
    publish("mesh:authz:decision", {
      allowed: true,
      audit: false,
      clientId: "spiffe://td/ns/a/sa/c",
      network: "10.0.0.0/8",
      protocol: "http",
      port: 4143,
      route: "GET /",
      reason: "allow-rule",
    });
    publish("mesh:authz:decision", {
      allowed: false,
      audit: false,
      network: "0.0.0.0/0",
      protocol: "grpc",
      port: 4143,
      reason: "unauthenticated",
    });
    publish("mesh:authz:decision", {
      allowed: false,
      audit: false,
      network: "0.0.0.0/0",
      protocol: "tcp",
      port: 5432,
      reason: "deny",
    });
    publish("mesh:retry:breaker", { name: "web", state: "bogus" });
    publish("mesh:retry:retry", null);

    const t = renderPrometheus(registry);
    expect(sampleOf(t, 'mesh_retry_requests_total{name="web"}')).toBe(1);
    expect(sampleOf(t, 'mesh_retry_retries_total{name="web",reason="status 503"}')).toBe(1);
    expect(sampleOf(t, 'mesh_retry_budget_exhausted_total{name="web",reason="status 503"}')).toBe(
      1,
    );
    expect(sampleOf(t, 'mesh_retry_limit_exceeded_total{name="web",reason="status 502"}')).toBe(1);
    expect(sampleOf(t, 'mesh_retry_timeouts_total{name="web",kind="per-try"}')).toBe(1);
    expect(sampleOf(t, 'mesh_circuit_breaker_state{name="web",state="open"}')).toBe(1);
    expect(sampleOf(t, 'mesh_circuit_breaker_state{name="web",state="closed"}')).toBe(0);
    expect(sampleOf(t, 'mesh_circuit_breaker_transitions_total{name="web",state="open"}')).toBe(1);
    expect(sampleOf(t, 'mesh_circuit_breaker_rejected_total{name="web"}')).toBe(2);
    expect(sampleOf(t, 'mesh_retry_hedges_total{name="web"}')).toBe(2);
    expect(sampleOf(t, 'mesh_retry_hedges_won_total{name="web"}')).toBe(1);
    expect(
      sampleOf(
        t,
        'mesh_balancer_endpoint_state{balancer="b",address="10.0.0.1:80",state="ejected"}',
      ),
    ).toBe(1);
    expect(
      sampleOf(t, 'mesh_balancer_endpoint_state{balancer="b",address="10.0.0.1:80",state="ready"}'),
    ).toBe(0);
    expect(sampleOf(t, 'mesh_balancer_endpoint_cost{balancer="b",address="10.0.0.1:80"}')).toBe(
      90.5,
    );
    expect(sampleOf(t, 'mesh_balancer_endpoint_pending{balancer="b",address="10.0.0.1:80"}')).toBe(
      2,
    );
    expect(t).not.toContain('address="10.0.0.2:80"');
    expect(
      sampleOf(
        t,
        'mesh_balancer_endpoint_transitions_total{balancer="b",state="ejected",reason="failure-accrual"}',
      ),
    ).toBe(1);
    expect(sampleOf(t, 'mesh_balancer_fail_fast_total{balancer="b"}')).toBe(1);
    expect(
      sampleOf(
        t,
        'identity_cert_expiration_timestamp_seconds{spiffe_id="spiffe://td/ns/a/sa/web"}',
      ),
    ).toBe(1_700_086_400);
    expect(
      sampleOf(
        t,
        'identity_cert_refresh_total{spiffe_id="spiffe://td/ns/a/sa/web",source="issuer"}',
      ),
    ).toBe(1);
    expect(
      sampleOf(t, 'identity_cert_refresh_failures_total{spiffe_id="spiffe://td/ns/a/sa/web"}'),
    ).toBe(1);
    expect(sampleOf(t, "identity_issuer_certs_issued_total")).toBe(1);
    expect(
      sampleOf(
        t,
        'inbound_http_authz_allow_total{target_port="4143",route="GET /",reason="allow-rule"}',
      ),
    ).toBe(1);
    expect(
      sampleOf(t, 'inbound_http_authz_deny_total{target_port="4143",reason="unauthenticated"}'),
    ).toBe(1);
    expect(sampleOf(t, 'inbound_tcp_authz_deny_total{target_port="5432",reason="deny"}')).toBe(1);
    expect(sampleOf(t, 'mesh_metrics_invalid_events_total{channel="mesh:retry:breaker"}')).toBe(1);
    expect(sampleOf(t, 'mesh_metrics_invalid_events_total{channel="mesh:retry:retry"}')).toBe(1);

    const check = await promtoolCheck(t);
    expect(check.code).toBe(0);
    expect(check.problems.filter((p) => !ACCEPTED_LINT.test(p))).toEqual([]);
  });

  it("counts @mesh/limit's rate-limit and adaptive-concurrency events", () => {
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry);
    const rejected = { name: "inbound", key: "spiffe://td/ns/a/sa/c", retryAfterMs: 40 };
    publish("mesh:limit:rate-limited", { ...rejected, limit: "identity" });
    publish("mesh:limit:rate-limited", { ...rejected, limit: "identity" });
    publish("mesh:limit:rate-limited", { ...rejected, key: undefined, limit: "total" });
    publish("mesh:limit:rate-limited", { ...rejected, limit: "bogus" });
    publish("mesh:limit:queued", { name: "svc", key: undefined, waitMs: 20 });
    publish("mesh:limit:concurrency-rejected", { name: "inbound", limit: 30, inFlight: 30 });
    publish("mesh:limit:concurrency-limit", {
      name: "inbound",
      limit: 31,
      previous: 30,
      minRttMs: 10,
      sampleRttMs: 15,
      window: "sample",
    });
    const t = renderPrometheus(registry);
    expect(sampleOf(t, 'mesh_ratelimit_rejected_total{name="inbound",limit="identity"}')).toBe(2);
    expect(sampleOf(t, 'mesh_ratelimit_rejected_total{name="inbound",limit="total"}')).toBe(1);
    expect(sampleOf(t, 'mesh_ratelimit_queued_total{name="svc"}')).toBe(1);
    expect(sampleOf(t, 'mesh_concurrency_limit_rejected_total{name="inbound"}')).toBe(1);
    expect(sampleOf(t, 'mesh_concurrency_limit{name="inbound"}')).toBe(31);
    expect(sampleOf(t, 'mesh_concurrency_limit_min_rtt_ms{name="inbound"}')).toBe(10);
    expect(
      sampleOf(t, 'mesh_metrics_invalid_events_total{channel="mesh:limit:rate-limited"}'),
    ).toBe(1);
  });

  it("counts every authorization decision into its own series, repeated or alternating", () => {
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry);
    const decide = (
      allowed: boolean,
      protocol: string,
      port: number,
      reason: string,
      route?: string,
    ) => publish("mesh:authz:decision", { allowed, audit: false, protocol, port, route, reason });
    for (let i = 0; i < 3; i++) decide(true, "http", 4143, "allow-rule", "GET /");
    decide(true, "http", 4143, "allow-rule", "POST /");
    decide(true, "grpc", 4143, "allow-rule", "GET /");
    decide(true, "http", 4143, "allow-rule");
    decide(true, "http", 4143, "audit", "GET /");
    decide(true, "http", 8080, "allow-rule", "GET /");
    decide(false, "http", 4143, "unauthenticated", "GET /");
    decide(true, "tcp", 4143, "allow-rule", "ignored for tcp");
    decide(true, "tcp", 4143, "allow-rule");
    decide(false, "tcp", 4143, "deny");

    const t = renderPrometheus(registry);
    const allow = (labels: string) => sampleOf(t, `inbound_http_authz_allow_total{${labels}}`);
    expect(allow('target_port="4143",route="GET /",reason="allow-rule"')).toBe(4);
    expect(allow('target_port="4143",route="POST /",reason="allow-rule"')).toBe(1);
    expect(allow('target_port="4143",reason="allow-rule"')).toBe(1);
    expect(allow('target_port="4143",route="GET /",reason="audit"')).toBe(1);
    expect(allow('target_port="8080",route="GET /",reason="allow-rule"')).toBe(1);
    expect(
      sampleOf(
        t,
        'inbound_http_authz_deny_total{target_port="4143",route="GET /",reason="unauthenticated"}',
      ),
    ).toBe(1);
    expect(
      sampleOf(t, 'inbound_tcp_authz_allow_total{target_port="4143",reason="allow-rule"}'),
    ).toBe(2);
    expect(sampleOf(t, 'inbound_tcp_authz_deny_total{target_port="4143",reason="deny"}')).toBe(1);
  });

  it("caps free-text reasons and stops recording after unsubscribe", () => {
    const registry = new Registry();
    unsubscribe = subscribeMeshEvents(registry, { maxReasons: 2 });
    for (const r of ["a", "b", "c", "d"])
      publish("mesh:retry:retry", { name: "n", attempt: 1, reason: r, delayMs: 1, origin: "o" });
    unsubscribe();
    publish("mesh:retry:retry", { name: "n", attempt: 1, reason: "a", delayMs: 1, origin: "o" });
    const t = renderPrometheus(registry);
    expect(sampleOf(t, 'mesh_retry_retries_total{name="n",reason="a"}')).toBe(1);
    expect(sampleOf(t, 'mesh_retry_retries_total{name="n",reason="other"}')).toBe(2);
  });
});
