/**
 * Peer: the minimal Node mTLS sidecar pair, the floor @mesh's pair is compared with. One file,
 * two roles, each its own process (CPU and RSS are read per proxy, as for @mesh):
 *
 * - `outbound`: a node:http server (h2c with `--h2`) forwarding every request as a stream of
 *   ONE node:http2 TLS session to the inbound (TLS 1.3, ALPN h2, client certificate, the
 *   inbound's SPIFFE ID checked against `--peer-id`); reconnects when the session closes.
 * - `inbound`: `http2.createSecureServer` (TLS 1.3, client certificate required and verified
 *   against the bundle), core stream API, forwarding to the app with an undici `Pool` via
 *   `pool.dispatch()` (with `--h2`: one h2c node:http2 session, trailers relayed — gRPC).
 *
 * Bodies stream both ways with backpressure. Nothing else: no routing, retries, metrics.
 * Plain JavaScript so its RSS carries no TypeScript-stripping cost.
 *
 * Usage: `node node-pair.mjs outbound <port> <inbound-port> --cert F --key F --ca F --peer-id ID [--h2]`
 *        `node node-pair.mjs inbound <port> <app-origin> --cert F --key F --ca F [--h2]`
 * Prints `READY <port>` once listening; exits on SIGTERM.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import http2 from "node:http2";
import { PassThrough } from "node:stream";
import { Pool } from "undici";

const [role, portArg, target] = process.argv.slice(2);
const opt = (name) => process.argv[process.argv.indexOf(`--${name}`) + 1];
const h2 = process.argv.includes("--h2");
const tls = {
  cert: readFileSync(opt("cert")),
  key: readFileSync(opt("key")),
  ca: readFileSync(opt("ca")),
  minVersion: "TLSv1.3",
};
const {
  HTTP2_HEADER_STATUS: STATUS,
  NGHTTP2_CANCEL,
  NGHTTP2_FLAG_END_STREAM: END_STREAM,
} = http2.constants;
// Connection-specific headers HTTP/2 forbids, and those a hop must not forward.
const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
  "http2-settings",
  "expect",
]);

/** End-to-end headers only: drops hop-by-hop ones, `te` but `te: trailers`, pseudo-headers. */
function endToEnd(headers, out = {}) {
  for (const name in headers) {
    if (HOP.has(name) || name[0] === ":" || (name === "te" && headers.te !== "trailers")) continue;
    out[name] = headers[name];
  }
  return out;
}

/** A session that is re-opened when it closes (one at a time). */
function sessionTo(authority, options) {
  let session = null;
  return () => {
    if (session && !session.closed && !session.destroyed) return session;
    session = http2.connect(authority, options);
    session.on("error", () => {});
    return session;
  };
}

/** Relays an h2 request (gRPC included: trailers, trailers-only answers) over `session`. */
function relayH2(down, headers, session) {
  const up = session().request(
    {
      ...endToEnd(headers),
      ":method": headers[":method"],
      ":path": headers[":path"],
      ":authority": headers[":authority"] ?? "app",
    },
    { endStream: false },
  );
  let trailers = {};
  up.on("response", (h, flags) => {
    if (down.destroyed) return;
    const out = endToEnd(h, { [STATUS]: h[STATUS] });
    if (flags & END_STREAM) return down.respond(out, { endStream: true });
    down.respond(out, { waitForTrailers: true });
    down.once("wantTrailers", () => down.sendTrailers(trailers));
    up.pipe(down);
  });
  up.on("trailers", (t) => (trailers = endToEnd(t)));
  up.on("error", () => down.destroyed || down.close(NGHTTP2_CANCEL));
  down.on("close", () => up.closed || up.close(NGHTTP2_CANCEL));
  down.on("error", () => {});
  down.pipe(up);
}

function listen(server, port) {
  server.listen(port, "127.0.0.1", () => process.stdout.write(`READY ${server.address().port}\n`));
}

if (role === "outbound") {
  const peerId = opt("peer-id");
  const session = sessionTo(`https://127.0.0.1:${target}`, {
    ...tls,
    ALPNProtocols: ["h2"],
    // SVIDs carry a SPIFFE ID (URI SAN), not a host name: check that ID, as @mesh does.
    checkServerIdentity: (_host, cert) =>
      cert.subjectaltname === `URI:${peerId}`
        ? undefined
        : new Error(`peer is ${cert.subjectaltname}, expected ${peerId}`),
  });
  if (h2) {
    const server = http2.createServer();
    server.on("stream", (down, headers) => relayH2(down, headers, session));
    listen(server, Number(portArg));
  } else {
    const server = createServer((req, res) => {
      const body = req.method !== "GET" && req.method !== "HEAD";
      const up = session().request(
        {
          ...endToEnd(req.headers),
          ":method": req.method,
          ":path": req.url,
          ":authority": req.headers.host ?? "app",
        },
        { endStream: !body },
      );
      up.on("response", (h) => {
        res.writeHead(h[STATUS], endToEnd(h));
        up.pipe(res);
      });
      up.on("error", () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      res.on("close", () => up.closed || up.close(NGHTTP2_CANCEL));
      if (body) req.pipe(up);
    });
    server.keepAliveTimeout = 60_000;
    listen(server, Number(portArg));
  }
} else if (role === "inbound") {
  const server = http2.createSecureServer({
    ...tls,
    requestCert: true,
    rejectUnauthorized: true,
    allowHTTP1: false,
  });
  if (h2) {
    const app = sessionTo(target, {});
    server.on("stream", (down, headers) => relayH2(down, headers, app));
  } else {
    const pool = new Pool(target, { connections: 64, pipelining: 1 });
    server.on("stream", (down, headers, flags) => {
      const method = headers[":method"];
      down.on("error", () => {});
      let done = false;
      pool.dispatch(
        {
          path: headers[":path"],
          method,
          headers: endToEnd(headers), // undici destroys a body stream once sent: give it its own, not the duplex h2 stream.
          body: flags & END_STREAM ? null : down.pipe(new PassThrough()),
        },
        {
          onRequestStart(controller) {
            down.once("close", () => done || controller.abort(new Error("client stream closed")));
          },
          onResponseStart(controller, status, h) {
            if (down.destroyed) return;
            down.respond(endToEnd(h, { [STATUS]: status }));
            down.on("drain", () => controller.resume());
          },
          onResponseData(controller, chunk) {
            if (!down.destroyed && !down.write(chunk)) controller.pause();
          },
          onResponseEnd() {
            done = true;
            if (!down.destroyed) down.end();
          },
          onResponseError() {
            done = true;
            if (down.destroyed) return;
            if (down.headersSent) down.close(NGHTTP2_CANCEL);
            else down.respond({ [STATUS]: 502 }, { endStream: true });
          },
        },
      );
    });
  }
  listen(server, Number(portArg));
} else {
  process.stderr.write(`node-pair: role: expected outbound or inbound, got ${role}\n`);
  process.exit(2);
}
process.once("SIGTERM", () => process.exit(0));
