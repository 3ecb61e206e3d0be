/**
 * Peer: `@fastify/http-proxy` (undici underneath) on Fastify with logging off.
 * Plain JavaScript so its RSS carries no TypeScript-stripping cost.
 * Usage: `node fastify-proxy.mjs <port> <upstream-origin>`; prints `READY <port>`.
 */
import proxy from "@fastify/http-proxy";
import Fastify from "fastify";

const port = Number(process.argv[2]);
const upstream = process.argv[3];
const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await app.register(proxy, { upstream, http2: false });
await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`READY ${port}\n`);
process.once("SIGTERM", () => {
  void app.close().finally(() => process.exit(0));
});
