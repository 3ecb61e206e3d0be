/**
 * The Node floor: node:http in front of an undici Pool, each request passed through with
 * `pool.stream()` straight into the client response (hop-by-hop headers dropped).
 * Usage: `node floor.mjs <upstream-origin>`; prints `READY <port>`.
 * `FLOOR_UNDICI=undici7` loads undici 7 instead (it still runs on Node 20).
 */
import { createServer } from "node:http";

// FLOOR_UNDICI=undici7 runs the floor with undici 7 (which still runs on Node 20).
const { Pool } = await import(process.env.FLOOR_UNDICI || "undici");

const HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
]);
const endToEnd = (headers) => {
  const out = {};
  for (const name in headers)
    if (!HOP.has(name) && headers[name] !== undefined) out[name] = headers[name];
  return out;
};
const pool = new Pool(process.argv[2], { connections: 64 });
const server = createServer((req, res) => {
  const body = req.method === "GET" || req.method === "HEAD" ? null : req;
  pool.stream(
    { path: req.url, method: req.method, headers: endToEnd(req.headers), body },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, endToEnd(headers));
      return res;
    },
    (err) => {
      if (err) {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      }
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY ${server.address().port}\n`));
process.once("SIGTERM", () => process.exit(0));
