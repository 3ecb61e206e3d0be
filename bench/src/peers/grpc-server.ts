/**
 * A gRPC server speaking the gRPC wire protocol over node:http2 (h2c): length-prefixed
 * messages, `content-type: application/grpc`, `grpc-status` in trailers. Methods:
 * `/bench.Echo/Unary` echoes the request message; `/bench.Echo/ServerStream` answers a
 * request holding a uint32 count with that many 64-byte messages.
 * Usage: `node grpc-server.ts <port>`; prints `READY <port>`.
 */
import { createServer } from "node:http2";
import { readGrpcMessages, grpcReply as reply } from "../load/grpc-wire.ts";

const port = Number(process.argv[2]);
const CHUNK = Buffer.alloc(64, 120);

const server = createServer({ maxSessionMemory: 64 });
server.on("stream", (stream, headers) => {
  const path = headers[":path"];
  readGrpcMessages(stream).then(
    (messages) => {
      const first = messages[0] ?? Buffer.alloc(0);
      if (path === "/bench.Echo/Unary") reply(stream, [first]);
      else if (path === "/bench.Echo/ServerStream") {
        const count = first.length >= 4 ? Math.min(first.readUInt32BE(0), 100_000) : 1;
        reply(
          stream,
          Array.from({ length: count }, () => CHUNK),
        );
      } else reply(stream, [], 12); // UNIMPLEMENTED
    },
    () => stream.close(),
  );
});
server.listen(port, "127.0.0.1", () => process.stdout.write(`READY ${port}\n`));
process.once("SIGTERM", () => process.exit(0));
