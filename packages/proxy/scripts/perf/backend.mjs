/**
 * Perf backend: node:http answering "ok" on 127.0.0.1 (port from argv, 0 = any).
 * Prints `READY <port>` once bound.
 */
import { createServer } from "node:http";

const body = Buffer.from("ok\n");
const server = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.once("SIGTERM", () => process.exit(0));
