import http from "node:http";
import http2 from "node:http2";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { GoldenSignals, instrumentServer, renderPrometheus } from "../src/index.js";
import { close, listen, manualClock, sampleOf } from "./helpers/net.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const answer = (status: number) => (url: string | undefined) => (url === "/missing" ? 404 : status);

// A server may be instrumented by several recorders (e.g. an app's and a platform's): each
// keeps its own state on the shared connection or session and sees every request once.
describe("two instrumentations of one server", () => {
  it.each([
    ["HTTP/1.1", false],
    ["HTTP/2 (h2c)", true],
  ])(
    "over %s each records every request, and detaching one leaves the other",
    async (_name, h2) => {
      const status = answer(200);
      // headers 7 ms in, the body 300 ms later: latency is time to the headers for both
      const clock = manualClock(0);
      const reply = (
        req: { url?: string | undefined },
        res: {
          writeHead(s: number): unknown;
          write(c: string): unknown;
          end(c: string): unknown;
        },
      ) => {
        clock.t += 7;
        res.writeHead(status(req.url));
        res.write("o");
        clock.t += 300;
        res.end("k");
      };
      const server = h2 ? http2.createServer(reply) : http.createServer(reply);
      const first = new GoldenSignals();
      const second = new GoldenSignals();
      instrumentServer(server, { signals: first, clock });
      const detachSecond = instrumentServer(server, {
        signals: second,
        direction: "outbound",
        clock,
      });
      const port = await listen(server);
      // one connection for everything, so both instrumentations share its state
      const agent = new Agent({
        connections: 1,
        ...(h2 ? { allowH2: true, useH2c: true } : {}),
      } as never);
      cleanups.push(
        () => close(server),
        () => agent.close(),
      );
      const origin = `http://127.0.0.1:${port}`;
      const get = async (path: string) => {
        const r = await request(`${origin}${path}`, { dispatcher: agent });
        await r.body.text();
      };
      for (const path of ["/", "/missing", "/"]) await get(path);
      detachSecond();
      await get("/");

      const labels = (direction: string) =>
        `direction="${direction}",authority="127.0.0.1:${port}",tls="no_identity"`;
      const a = renderPrometheus(first.registry);
      expect(sampleOf(a, `request_total{${labels("inbound")}}`)).toBe(4);
      expect(
        sampleOf(
          a,
          `response_total{${labels("inbound")},classification="success",status_code="200"}`,
        ),
      ).toBe(3);
      expect(
        sampleOf(
          a,
          `response_total{${labels("inbound")},classification="success",status_code="404"}`,
        ),
      ).toBe(1);
      expect(sampleOf(a, `response_latency_ms_sum{${labels("inbound")},status_code="200"}`)).toBe(
        21,
      );
      const b = renderPrometheus(second.registry);
      expect(sampleOf(b, `response_latency_ms_sum{${labels("outbound")},status_code="200"}`)).toBe(
        14,
      );
      expect(sampleOf(b, `request_total{${labels("outbound")}}`)).toBe(3);
      expect(
        sampleOf(
          b,
          `response_total{${labels("outbound")},classification="success",status_code="200"}`,
        ),
      ).toBe(2);
    },
  );
});
