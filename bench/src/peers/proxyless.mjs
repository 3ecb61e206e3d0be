/**
 * Peer: the caller's outbound side in-process ("proxyless"), talking mTLS straight to the
 * callee's inbound sidecar. This process stands for a Node app that calls its upstream
 * through the @mesh libraries instead of an outbound sidecar: a node:http server (the load
 * generator's requests are the app's own calls) passing each request with `stream()` through
 *
 *   @mesh/retry `retry()` → @mesh/balancer `Balancer` (P2C + Peak-EWMA, failure accrual)
 *   → one undici `Pool` per endpoint whose `connect` is @mesh/tls-identity's
 *     `undiciConnector` (TLS 1.3, this app's X.509-SVID, the sidecar's SPIFFE ID checked)
 *
 * to the inbound `mesh-proxy`. `--hop http1` (default): HTTP/1.1 over keep-alive mTLS
 * connections; `--hop h2`: ALPN h2 (undici's HTTP/2 client, one connection). Default V8
 * flags, as an app has. Plain JavaScript so its RSS carries no TypeScript-stripping cost.
 *
 * Usage: `node proxyless.mjs <port|0> <inbound-host:port> --cert F --key F --ca F
 *         --peer-id ID [--hop http1|h2]`; prints `READY <port>`.
 */
import { createServer } from "node:http";
import { Balancer } from "@mesh/balancer";
import { retry } from "@mesh/retry";
import { SvidSource, undiciConnector } from "@mesh/tls-identity";
import { Pool } from "undici";
import { endToEnd } from "./end-to-end.mjs";

const [portArg, inbound] = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
};
const h2 = opt("hop", "http1") === "h2";
const identity = SvidSource.fromFiles({
  certFile: opt("cert"),
  keyFile: opt("key"),
  bundleFile: opt("ca"),
});
await identity.ready();
const connect = undiciConnector(identity, { expect: opt("peer-id"), allowH2: h2 });
const balancer = new Balancer({
  endpoints: [{ address: inbound, identity: opt("peer-id") }],
  preserveHost: true,
  pool: { connections: 64, keepAliveTimeout: 60_000 },
  factory: (origin, options) =>
    new Pool(origin.replace(/^http:/, "https:"), { ...options, allowH2: h2, connect }),
});
const dispatcher = balancer.compose(retry());

const server = createServer((req, res) => {
  const body = req.method === "GET" || req.method === "HEAD" ? null : req;
  const headers = endToEnd(req.headers);
  dispatcher.stream(
    { origin: `http://${inbound}`, path: req.url, method: req.method, headers, body },
    ({ statusCode, headers: h }) => {
      res.writeHead(statusCode, endToEnd(h));
      return res;
    },
    (err) => {
      if (err && !res.headersSent) res.writeHead(502).end(err.message);
      else if (err) res.destroy();
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portArg), "127.0.0.1", () =>
  process.stdout.write(`READY ${server.address().port}\n`),
);
process.on("SIGTERM", () => {
  server.close();
  void balancer.close().finally(() => {
    identity.close();
    process.exit(0);
  });
});
