// The upstream of bench/proxy-cost.mjs: a node:http server answering "ok" to everything.
// Usage: node backend.mjs — prints `READY <port>`.
import { createServer } from "node:http";

const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
  res.end("ok");
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY ${server.address().port}\n`));
process.once("SIGTERM", () => process.exit(0));
