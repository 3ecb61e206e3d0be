/**
 * The clients a load generator can drive: a plain undici pool, undici's RetryAgent,
 * @mesh/retry, and the balancing strategies. Each is a `send` function for the open loop
 * that resolves with the response status after the body has been consumed.
 */
import { connect as connectHttp2 } from "node:http2";
import { Agent, BalancedPool, type Dispatcher, Pool, RetryAgent } from "undici";
import { grpcCall } from "./grpc-wire.ts";
import { loadMesh } from "./mesh-adapters.ts";

/** Which client a load generator uses; serialisable so it can cross a process boundary. */
export type ClientSpec =
  | {
      kind: "pool";
      origin: string;
      connections: number;
      /** Count responses carrying this header, by status (`Client.headerCounts`). */
      countHeader?: string;
    }
  | {
      kind: "retry-agent";
      origin: string;
      connections: number;
      maxRetries: number;
      minTimeoutMs: number;
      maxTimeoutMs: number;
    }
  | { kind: "mesh-retry"; origin: string; connections: number; limit: number }
  | {
      kind: "mesh-hedge";
      origins: string[];
      connections: number;
      /** Hedging delay, ms; `undefined` = the balancer alone, no hedging. */
      delayMs: number | undefined;
    }
  | { kind: "grpc-unary"; origin: string }
  | { kind: "grpc-stream"; origin: string; messages: number }
  | {
      kind: "balanced-pool" | "mesh-p2c" | "mesh-round-robin" | "mesh-least-pending";
      origins: string[];
      connections: number;
    };

/** A ready client: `send` for the open loop, `close` to release sockets. */
export interface Client {
  /** What is being measured, for results. */
  describe: string;
  send(index: number, signal: AbortSignal): Promise<number>;
  close(): Promise<void>;
  /** Responses that carried the spec's `countHeader`, by status. */
  headerCounts?(): Record<string, number>;
}

/** Common request shape. */
export interface RequestShape {
  path: string;
  /** When set, every logical request carries `<idHeader>: <runId>-<index>` (retries repeat it). */
  idHeader?: string;
  runId?: string;
}

/** Builds the client described by `spec`. */
export async function createClient(spec: ClientSpec, shape: RequestShape): Promise<Client> {
  const headersFor = (index: number): Record<string, string> | undefined =>
    shape.idHeader ? { [shape.idHeader]: `${shape.runId ?? "r"}-${index}` } : undefined;
  const via =
    (dispatcher: Dispatcher, origin: string) => async (index: number, signal: AbortSignal) => {
      const res = await dispatcher.request({
        origin,
        path: shape.path,
        method: "GET",
        headers: headersFor(index),
        signal,
      });
      await res.body.dump();
      return res.statusCode;
    };
  switch (spec.kind) {
    case "grpc-unary":
    case "grpc-stream": {
      // One HTTP/2 connection, as a gRPC channel uses; calls are multiplexed on it.
      const session = connectHttp2(spec.origin);
      session.on("error", () => {});
      const payload = spec.kind === "grpc-unary" ? Buffer.alloc(64, 97) : Buffer.alloc(4);
      if (spec.kind === "grpc-stream") payload.writeUInt32BE(spec.messages, 0);
      const path = spec.kind === "grpc-unary" ? "/bench.Echo/Unary" : "/bench.Echo/ServerStream";
      const expected = spec.kind === "grpc-unary" ? 1 : spec.messages;
      return {
        describe: `gRPC ${spec.kind === "grpc-unary" ? "unary" : `server streaming (${spec.messages} messages)`} over one HTTP/2 connection`,
        async send(_index, signal) {
          const r = await grpcCall(session, path, payload, signal);
          // Map to HTTP-like codes for the open loop: 200 = OK with every message.
          return r.grpcStatus === 0 && r.messages === expected
            ? 200
            : 500 + Math.min(r.grpcStatus, 99);
        },
        close: () => new Promise<void>((resolve) => session.close(() => resolve())),
      };
    }
    case "pool": {
      const pool = new Pool(spec.origin, { connections: spec.connections });
      const describe = `undici Pool (${spec.connections} connections)`;
      const header = spec.countHeader?.toLowerCase();
      if (header === undefined)
        return { describe, send: via(pool, spec.origin), close: () => pool.close() };
      const counts: Record<string, number> = {};
      return {
        describe,
        async send(index, signal) {
          const res = await pool.request({
            origin: spec.origin,
            path: shape.path,
            method: "GET",
            headers: headersFor(index),
            signal,
          });
          await res.body.dump();
          if (res.headers[header] !== undefined)
            counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1;
          return res.statusCode;
        },
        close: () => pool.close(),
        headerCounts: () => ({ ...counts }),
      };
    }
    case "retry-agent": {
      const agent = new Agent({ connections: spec.connections });
      const retrying = new RetryAgent(agent, {
        maxRetries: spec.maxRetries,
        minTimeout: spec.minTimeoutMs,
        maxTimeout: spec.maxTimeoutMs,
        timeoutFactor: 2,
        statusCodes: [500, 502, 503, 504],
        methods: ["GET"],
        // throwOnError stays at its default (true), as users get it: after the last retry
        // the request fails with RequestRetryError. With `false`, many requests never
        // completed under a 100% failure storm in this harness (see bench/README.md).
      });
      return {
        describe: `undici RetryAgent (maxRetries ${spec.maxRetries}, backoff ${spec.minTimeoutMs}→${spec.maxTimeoutMs} ms)`,
        send: via(retrying, spec.origin),
        close: () => retrying.close(),
      };
    }
    case "mesh-retry": {
      const mesh = await loadMesh();
      const agent = new Agent({ connections: spec.connections });
      const { dispatcher, describe } = mesh.retryDispatcher(agent, { limit: spec.limit });
      return { describe, send: via(dispatcher, spec.origin), close: () => agent.close() };
    }
    case "mesh-hedge": {
      const mesh = await loadMesh();
      const { dispatcher, describe, close } = mesh.hedged(spec.origins, {
        connections: spec.connections,
        delayMs: spec.delayMs,
      });
      return { describe, send: via(dispatcher, spec.origins[0]!), close };
    }
    case "balanced-pool": {
      const pool = new BalancedPool(spec.origins, { connections: spec.connections });
      return {
        describe: "undici BalancedPool",
        send: via(pool, spec.origins[0]!),
        close: () => pool.close(),
      };
    }
    case "mesh-p2c":
    case "mesh-round-robin":
    case "mesh-least-pending": {
      const mesh = await loadMesh();
      const strategy =
        spec.kind === "mesh-p2c"
          ? "p2c"
          : spec.kind === "mesh-round-robin"
            ? "round-robin"
            : "least-pending";
      const { dispatcher, describe, close } = mesh.balancer(spec.origins, {
        connections: spec.connections,
        strategy,
      });
      return { describe, send: via(dispatcher, spec.origins[0]!), close };
    }
  }
}
