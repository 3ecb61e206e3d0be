import http from "node:http";
import { retry } from "@mesh/retry";
import { Agent } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { GoldenSignals, metrics, renderPrometheus } from "../src/index.js";
import { close, listen, sampleOf } from "./helpers/net.js";

// Node 24's global fetch (bundled undici 7) passes a legacy handler to dispatch(); undici 8
// dispatchers no longer adapt it, so whichever interceptor is outermost has to.
type AnyInterceptor = (dispatch: never) => never;
const globalFetch = globalThis.fetch as (url: string, init: object) => Promise<Response>;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Answers 503 to the first request on each path and 200 `ok <path>` after that. */
async function failFirstServer(): Promise<string> {
  const seen = new Set<string>();
  const server = http.createServer((req, res) => {
    if (!seen.has(req.url!)) {
      seen.add(req.url!);
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("unavailable");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`ok ${req.url}`);
  });
  const port = await listen(server);
  cleanups.push(() => close(server));
  return `127.0.0.1:${port}`;
}

const fastRetry = () =>
  retry({ backoff: { base: 0, max: 0 }, budget: { minRetriesPerSecond: 1000 } });

const cases: {
  name: string;
  interceptors: (m: AnyInterceptor) => AnyInterceptor[];
  status: number;
  requests: number;
  responses: Record<string, number>;
}[] = [
  {
    name: "compose(retry(), metrics()): metrics outermost sees one logical request",
    interceptors: (m) => [fastRetry(), m],
    status: 200,
    requests: 1,
    responses: { "200": 1 },
  },
  {
    name: "compose(metrics(), retry()): metrics inside retry sees every attempt",
    interceptors: (m) => [m, fastRetry()],
    status: 200,
    requests: 2,
    responses: { "503": 1, "200": 1 },
  },
  {
    name: "metrics() alone",
    interceptors: (m) => [m],
    status: 503,
    requests: 1,
    responses: { "503": 1 },
  },
];

describe("global fetch → undici 8 Agent composed with metrics()", () => {
  for (const c of cases) {
    it(`${c.name}: completes and counts`, async () => {
      const authority = await failFirstServer();
      const signals = new GoldenSignals();
      const agent = new Agent();
      cleanups.push(() => agent.close());
      const m = metrics({ signals, trace: false }) as unknown as AnyInterceptor;
      const dispatcher = agent.compose(...(c.interceptors(m) as never[]));

      const res = await globalFetch(`http://${authority}/x`, { dispatcher });
      expect(res.status).toBe(c.status);
      expect(await res.text()).toBe(c.status === 200 ? "ok /x" : "unavailable");

      const text = renderPrometheus(signals.registry);
      const labels = `direction="outbound",authority="${authority}",tls="no_identity"`;
      expect(sampleOf(text, `request_total{${labels}}`)).toBe(c.requests);
      let total = 0;
      for (const [status, n] of Object.entries(c.responses)) {
        const classification = status.startsWith("5") ? "failure" : "success";
        const series = `response_total{${labels},classification="${classification}",status_code="${status}"}`;
        expect(sampleOf(text, series)).toBe(n);
        total += n;
      }
      const all = text
        .split("\n")
        .filter((l) => l.startsWith("response_total{"))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
      expect(all).toBe(total);
    });
  }
});
