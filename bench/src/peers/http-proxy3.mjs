/**
 * Peer: `http-proxy-3` on a node:http server with a keep-alive agent to the backend.
 * Plain JavaScript so its RSS carries no TypeScript-stripping cost (~16 MB on Node 24).
 * Usage: `node http-proxy3.mjs <port> <upstream-origin>`; prints `READY <port>`.
 */
import { Agent, createServer } from "node:http";
import { createProxyServer } from "http-proxy-3";

const port = Number(process.argv[2]);
const target = process.argv[3];
const agent = new Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128 });
const proxy = createProxyServer({ target, agent, xfwd: false });
proxy.on("error", (_err, _req, res) => {
  if ("writeHead" in res && !res.headersSent) res.writeHead(502);
  res.end();
});
const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => process.stdout.write(`READY ${port}\n`));
process.once("SIGTERM", () => process.exit(0));
