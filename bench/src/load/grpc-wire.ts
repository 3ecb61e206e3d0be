/**
 * The gRPC wire protocol over node:http2, by hand: 5-byte length-prefixed messages and a
 * client call that resolves with the `grpc-status` from trailers (or trailers-only headers).
 */
import type { ClientHttp2Session, ServerHttp2Stream } from "node:http2";
import type { Readable } from "node:stream";

/** Frames one message: compressed flag 0, big-endian uint32 length, payload. */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Reads a whole stream and splits it into gRPC messages. */
export async function readGrpcMessages(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return splitMessages(Buffer.concat(chunks));
}

function splitMessages(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 5 <= data.length) {
    const len = data.readUInt32BE(at + 1);
    out.push(data.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return out;
}

/** Result of one call. */
export interface GrpcCallResult {
  grpcStatus: number;
  messages: number;
}

/** Makes one call on `session` and resolves with its gRPC status and message count. */
export function grpcCall(
  session: ClientHttp2Session,
  path: string,
  message: Buffer,
  signal?: AbortSignal,
): Promise<GrpcCallResult> {
  return new Promise((resolve, reject) => {
    const req = session.request(
      { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" },
      { signal },
    );
    let status: number | undefined;
    let buffered: Buffer = Buffer.alloc(0);
    let messages = 0;
    req.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) status = Number(headers["grpc-status"]);
    });
    req.on("trailers", (trailers) => {
      if (trailers["grpc-status"] !== undefined) status = Number(trailers["grpc-status"]);
    });
    req.on("data", (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      let at = 0;
      while (at + 5 <= buffered.length) {
        const len = buffered.readUInt32BE(at + 1);
        if (at + 5 + len > buffered.length) break;
        messages++;
        at += 5 + len;
      }
      buffered = buffered.subarray(at);
    });
    req.once("end", () => resolve({ grpcStatus: status ?? 2, messages }));
    req.once("error", reject);
    req.end(grpcFrame(message));
  });
}

/** Answers a gRPC call: `messages` length-prefixed, then `grpc-status` in the trailers. */
export function grpcReply(stream: ServerHttp2Stream, messages: Buffer[], status = 0): void {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": String(status) }));
  for (const m of messages) stream.write(grpcFrame(m));
  stream.end();
}
