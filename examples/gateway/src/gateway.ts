import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { Balancer } from "@mesh/balancer";
import {
  GoldenSignals,
  instrumentServer,
  metrics,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  subscribeMeshEvents,
} from "@mesh/metrics";
import { RetryBudget, retry, timeout } from "@mesh/retry";
import type { Dispatcher } from "undici";
import { errorResponse } from "./errors.ts";
import { clientResponseHeaders, upstreamRequestHeaders } from "./headers.ts";

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** Upstream replicas, `host:port`. */
  upstreams: string[];
  /** Deadline over every attempt of one request, in ms. */
  requestTimeoutMs: number;
  /** Deadline of one attempt until its response headers, in ms. */
  perTryTimeoutMs: number;
  /** Called for each request whose upstream exchange failed (for logging). */
  onUpstreamError?: (info: { method: string; path: string; status: number; code?: string }) => void;
}

/** A gateway: a `node:http` server (not yet listening) and what it owns. */
export interface Gateway {
  server: Server;
  signals: GoldenSignals;
  balancer: Balancer;
  budget: RetryBudget;
  /**
   * Graceful stop: no new connections; requests in flight are answered with
   * `Connection: close`; after `graceMs` the remaining connections are cut. Then the upstream
   * pools close and the metrics subscriptions end. `onGraceOver` is called if it came to that.
   */
  shutdown(graceMs: number, onGraceOver?: () => void): Promise<void>;
}

// The balancer rewrites the destination per request, so the origin only names the service
// (labels on metrics and events); the upstream sees its own address as Host.
const SERVICE_ORIGIN = "http://upstreams";

/** Routes on the inbound `route` label: a fixed set, so it never explodes cardinality. */
function routeOf(_method: string, path: string): string {
  if (path === "/api" || path.startsWith("/api/") || path.startsWith("/api?")) return "/api/*";
  if (path === "/metrics") return "/metrics";
  return "other";
}

/**
 * Builds the gateway: `/api/*` is forwarded (path unchanged) to the upstream pool through
 * `Balancer` ← metrics ← retry ← timeout; `/metrics` serves the Prometheus text exposition.
 */
export function createGateway(options: GatewayOptions): Gateway {
  const signals = new GoldenSignals();
  const unsubscribe = subscribeMeshEvents(signals.registry); // retries, budgets, endpoints

  const budget = new RetryBudget({ name: "upstreams" });
  const balancer = new Balancer({
    name: "upstreams",
    endpoints: options.upstreams,
    preserveHost: false,
  });
  // compose(a, b, c) runs c outermost: the deadline spans all attempts, retry asks the budget,
  // and metrics, innermost, records every attempt as outbound traffic.
  const upstream: Dispatcher = balancer.compose(
    metrics({ signals, backend: "upstreams" }),
    retry({ budget, limit: 2, perTryTimeout: options.perTryTimeoutMs }),
    timeout({ request: options.requestTimeoutMs }),
  );

  const state = { draining: false };
  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    const route = routeOf(req.method ?? "GET", url);
    if (route === "/api/*") {
      forward(upstream, req, res, options, state).catch(() => {
        // Only reached on a bug-like failure (e.g. upstream headers Node refuses to send).
        if (res.headersSent) res.destroy();
        else {
          const message = "the upstream response could not be relayed";
          sendJson(res, 502, { error: "bad_gateway", message, code: null }, state);
        }
      });
    } else if (route === "/metrics" && (req.method === "GET" || req.method === "HEAD")) {
      const text = renderPrometheus(signals.registry);
      res.writeHead(200, {
        "content-type": PROMETHEUS_CONTENT_TYPE,
        "content-length": Buffer.byteLength(text),
        ...(state.draining ? { connection: "close" } : {}),
      });
      res.end(req.method === "HEAD" ? undefined : text);
    } else {
      sendJson(res, 404, { error: "not_found", message: `no route for ${url}` }, state);
    }
  });
  instrumentServer(server, { signals, route: routeOf });

  return {
    server,
    signals,
    balancer,
    budget,
    async shutdown(graceMs, onGraceOver) {
      state.draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => {
        onGraceOver?.();
        server.closeAllConnections();
      }, graceMs);
      grace.unref();
      await closed;
      clearTimeout(grace);
      await balancer.close();
      unsubscribe();
    },
  };
}

async function forward(
  upstream: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  options: GatewayOptions,
  state: { draining: boolean },
): Promise<void> {
  // A client that goes away aborts the upstream request (and any retry or backoff).
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const hasBody =
    req.headers["transfer-encoding"] !== undefined ||
    (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");

  let response: Dispatcher.ResponseData;
  try {
    response = await upstream.request({
      origin: SERVICE_ORIGIN,
      path: req.url ?? "/",
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamRequestHeaders(req),
      body: hasBody ? req : null,
      signal: abort.signal,
    });
  } catch (err) {
    if (abort.signal.aborted) return; // the client left; no one to answer
    const e = errorResponse(err);
    options.onUpstreamError?.({
      method: req.method ?? "",
      path: req.url ?? "",
      status: e.status,
      ...(e.code === undefined ? {} : { code: e.code }),
    });
    if (!res.headersSent) {
      sendJson(res, e.status, { error: e.error, message: e.message, code: e.code ?? null }, state);
    } else res.destroy();
    if (!req.complete) req.resume(); // let the client finish sending, so it reads the answer
    return;
  }

  const headers = clientResponseHeaders(response.headers);
  // While draining, the connection closes after this response instead of idling.
  if (state.draining) headers.connection = "close";
  try {
    res.writeHead(response.statusCode, headers);
  } catch (err) {
    response.body.destroy(); // frees the upstream connection
    throw err;
  }
  try {
    // Streams with backpressure; an error on either side destroys both.
    await pipeline(response.body, res);
  } catch {
    // The upstream broke mid-body or the client left: the response is cut short (destroyed),
    // the only honest signal once the status line has been sent.
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: object,
  state: { draining: boolean },
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...(state.draining ? { connection: "close" } : {}),
  });
  res.end(text);
}

/** Starts listening and resolves with the bound port. */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("not a TCP listener");
  return address.port;
}
