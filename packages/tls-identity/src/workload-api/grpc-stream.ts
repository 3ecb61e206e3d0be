import http2 from "node:http2";
import { connect } from "node:net";
import { IdentityError } from "../errors.js";

/**
 * A minimal gRPC client for one server-streaming call over a Unix socket, on node:http2:
 * the Workload API needs nothing more (one request message, a stream of responses, the
 * status in trailers), so this package carries no gRPC library.
 */

/** gRPC status names by number, for error messages. */
const STATUS = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** Largest response message accepted (gRPC's default receive limit). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** How a streaming call ended. */
export interface StreamEnd {
  /** `undefined` when the server ended the call with status OK. */
  error?: IdentityError;
}

/** Options of {@link serverStream}. */
export interface ServerStreamOptions {
  socketPath: string;
  /** `/package.Service/Method`. */
  path: string;
  /** Encoded request message. */
  request: Uint8Array;
  /** Extra request metadata. */
  metadata?: Record<string, string>;
  onMessage(message: Buffer): void;
  /** Called exactly once. */
  onEnd(end: StreamEnd): void;
}

/** An open call; `cancel()` ends it without calling `onEnd`. */
export interface ServerStreamCall {
  cancel(): void;
}

function unavailable(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE",
    message,
    cause === undefined ? undefined : { cause },
  );
}

/** Opens the call. Connection problems arrive through `onEnd`, never as a throw. */
export function serverStream(o: ServerStreamOptions): ServerStreamCall {
  let ended = false;
  const session = http2.connect("http://localhost", {
    createConnection: () => connect(o.socketPath),
  });
  const finish = (end: StreamEnd) => {
    if (ended) return;
    ended = true;
    session.destroy();
    o.onEnd(end);
  };
  const where = `Workload API at ${o.socketPath}`;
  session.on("error", (err) =>
    finish({ error: unavailable(`${where}: ${(err as Error).message}`, err) }),
  );
  session.on("close", () => finish({ error: unavailable(`${where}: connection closed`) }));
  session.on("goaway", () => {
    // Streams in flight still finish; the next call opens a new session.
  });

  const stream = session.request({
    ":method": "POST",
    ":path": o.path,
    "content-type": "application/grpc",
    te: "trailers",
    ...o.metadata,
  });
  const frame = Buffer.alloc(5 + o.request.byteLength);
  frame.writeUInt32BE(o.request.byteLength, 1);
  frame.set(o.request, 5);
  stream.end(frame);

  let pending: Buffer = Buffer.alloc(0);
  let status: { code: number; message: string } | undefined;
  const statusOf = (h: http2.IncomingHttpHeaders) => {
    const raw = h["grpc-status"];
    if (raw === undefined) return undefined;
    const code = Number(raw);
    let message = String(h["grpc-message"] ?? "");
    try {
      message = decodeURIComponent(message);
    } catch {
      // Not percent-encoded as the spec says; show it as sent.
    }
    return { code: Number.isInteger(code) ? code : 2, message };
  };

  stream.on("response", (headers) => {
    const http = Number(headers[":status"]);
    if (http !== 200) {
      finish({ error: unavailable(`${where}: HTTP status ${http}, expected 200 (not gRPC?)`) });
      return;
    }
    // Trailers-only responses carry the status in the headers.
    status = statusOf(headers);
  });
  stream.on("trailers", (trailers) => {
    status = statusOf(trailers) ?? status;
  });
  stream.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (!ended && pending.length >= 5) {
      const compressed = pending[0] as number;
      const len = pending.readUInt32BE(1);
      if (compressed !== 0) {
        finish({
          error: new IdentityError(
            "MESH_IDENTITY_WORKLOAD_API_INVALID",
            `${where}: a compressed message arrived, but none was asked for`,
          ),
        });
        return;
      }
      if (len > MAX_MESSAGE_BYTES) {
        finish({
          error: new IdentityError(
            "MESH_IDENTITY_WORKLOAD_API_INVALID",
            `${where}: a message of ${len} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit`,
          ),
        });
        return;
      }
      if (pending.length < 5 + len) break;
      const msg = pending.subarray(5, 5 + len);
      pending = pending.subarray(5 + len);
      o.onMessage(msg);
    }
  });
  stream.on("error", (err) =>
    finish({ error: unavailable(`${where}: ${(err as Error).message}`, err) }),
  );
  stream.on("close", () => {
    if (status === undefined) {
      finish({ error: unavailable(`${where}: the stream ended without a gRPC status`) });
    } else if (status.code === 0) {
      finish({});
    } else {
      const name = STATUS[status.code] ?? `status ${status.code}`;
      finish({
        error: unavailable(
          `${where}: ${name} (${status.code})${status.message ? `: ${status.message}` : ""}`,
        ),
      });
    }
  });

  return {
    cancel() {
      if (ended) return;
      ended = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      session.destroy();
    },
  };
}
