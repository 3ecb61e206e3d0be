import { hasSubscribers } from "node:diagnostics_channel";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { GoldenSignals, instrumentServer, renderPrometheus } from "../src/index.js";
import { close, listen, manualClock, sampleOf, waitFor } from "./helpers/net.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Writes raw bytes on one connection and resolves with everything the server sent back. */
async function raw(port: number, bytes: string, until: (text: string) => boolean): Promise<string> {
  const socket = net.connect(port, "127.0.0.1");
  cleanups.push(() => void socket.destroy());
  await once(socket, "connect");
  socket.write(bytes);
  let text = "";
  for await (const chunk of socket) {
    text += chunk.toString("latin1");
    if (until(text)) break;
  }
  return text;
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

describe("instrumentServer over HTTP/1.1", () => {
  it("records pipelined requests on one connection each with its own status and latency", async () => {
    const clock = manualClock(100);
    const signals = new GoldenSignals();
    const held: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => {
      // answer out of order: the first request waits until the second has arrived
      held.push(res);
      if (req.url === "/b") {
        clock.t += 5;
        held[1]!.writeHead(404).end("b");
        clock.t += 10;
        held[0]!.writeHead(200).end("a");
      }
    });
    cleanups.push(instrumentServer(server, { signals, clock }));
    const port = await listen(server);
    cleanups.push(() => close(server));
    const reply = await raw(
      port,
      "GET /a HTTP/1.1\r\nHost: svc\r\n\r\nGET /b HTTP/1.1\r\nHost: svc\r\n\r\n",
      (t) => count(t, "\r\n0\r\n\r\n") === 2, // both chunked bodies ended
    );
    expect(reply.indexOf("HTTP/1.1 200")).toBeLessThan(reply.indexOf("HTTP/1.1 404"));
    const text = renderPrometheus(signals.registry);
    const l = 'direction="inbound",authority="svc",tls="no_identity"';
    expect(sampleOf(text, `request_total{${l}}`)).toBe(2);
    expect(sampleOf(text, `response_total{${l},classification="success",status_code="200"}`)).toBe(
      1,
    );
    expect(sampleOf(text, `response_total{${l},classification="success",status_code="404"}`)).toBe(
      1,
    );
    // headers of the queued response were committed 5 ms in, the first one's 15 ms in
    expect(sampleOf(text, `response_latency_ms_sum{${l},status_code="404"}`)).toBe(5);
    expect(sampleOf(text, `response_latency_ms_sum{${l},status_code="200"}`)).toBe(15);
  });

  it("counts requests Node answers itself (400 for a missing Host) and never twice", async () => {
    const signals = new GoldenSignals();
    const server = http.createServer((_req, res) => res.end("ok"));
    cleanups.push(instrumentServer(server, { signals }));
    const port = await listen(server);
    cleanups.push(() => close(server));
    await raw(port, "GET / HTTP/1.1\r\n\r\n", (t) => t.includes("\r\n\r\n"));
    const text = renderPrometheus(signals.registry);
    const l = 'direction="inbound",tls="no_identity"';
    expect(sampleOf(text, `request_total{${l}}`)).toBe(1);
    expect(sampleOf(text, `response_total{${l},classification="success",status_code="400"}`)).toBe(
      1,
    );
  });

  it("records with every instrumentation of a server, and stops after detaching while finishing in-flight requests", async () => {
    const first = new GoldenSignals();
    const second = new GoldenSignals();
    let release: (() => void) | undefined;
    const server = http.createServer((req, res) => {
      if (req.url === "/slow") release = () => res.end("slow");
      else res.end("ok");
    });
    const detachFirst = instrumentServer(server, { signals: first });
    const detachSecond = instrumentServer(server, { signals: second });
    const port = await listen(server);
    const agent = new http.Agent({ keepAlive: true });
    cleanups.push(
      () => close(server),
      () => agent.destroy(),
    );
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path, agent }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode!));
          })
          .on("error", reject);
      });
    await get("/");
    const slow = get("/slow");
    await waitFor(() => release !== undefined);
    detachFirst();
    detachSecond();
    release!();
    await slow;
    await get("/");
    const l = `direction="inbound",authority="127.0.0.1:${port}",tls="no_identity"`;
    for (const signals of [first, second]) {
      const text = renderPrometheus(signals.registry);
      expect(sampleOf(text, `request_total{${l}}`)).toBe(2);
      expect(
        sampleOf(text, `response_total{${l},classification="success",status_code="200"}`),
      ).toBe(2);
    }
    // nothing stays subscribed to node:http's channels once no server is instrumented
    expect(hasSubscribers("http.server.request.start")).toBe(false);
    expect(hasSubscribers("http.server.response.finish")).toBe(false);
  });

  it("records a response cut off before its headers as a failure without a status", async () => {
    const clock = manualClock();
    const signals = new GoldenSignals();
    const server = http.createServer((req) => {
      clock.t += 30;
      req.socket.destroy();
    });
    cleanups.push(instrumentServer(server, { signals, clock }));
    const port = await listen(server);
    cleanups.push(() => close(server));
    await raw(port, "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", () => false);
    const l = 'direction="inbound",authority="svc",tls="no_identity"';
    await waitFor(() =>
      renderPrometheus(signals.registry).includes(`response_total{${l},classification="failure"}`),
    );
    const text = renderPrometheus(signals.registry);
    expect(sampleOf(text, `response_total{${l},classification="failure"}`)).toBe(1);
    expect(sampleOf(text, `response_latency_ms_sum{${l}}`)).toBe(30);
  });
});
