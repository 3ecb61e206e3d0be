/**
 * The web service: for `GET /books/<id>` it asks the books service through its sidecar's
 * outbound listener (`--books-via host:port`, with `host: books`) and relays the answer;
 * a failed books call becomes a 502.
 *
 *   node web.ts --port 8080 --books-via 127.0.0.1:4140
 */
import http from "node:http";
import { flags, runApp } from "./app.ts";

const f = flags(process.argv.slice(2));
const via = f["books-via"] ?? "127.0.0.1:4140";
const [viaHost, viaPort] = [
  via.slice(0, via.lastIndexOf(":")),
  Number(via.slice(via.lastIndexOf(":") + 1)),
];
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

runApp("web", Number(f.port ?? 0), (req, res) => {
  req.resume();
  const upstream = http.request(
    {
      host: viaHost,
      port: viaPort,
      path: req.url,
      method: "GET",
      headers: { host: "books" },
      agent,
    },
    (up) => {
      const chunks: Buffer[] = [];
      up.on("data", (c: Buffer) => chunks.push(c));
      up.on("end", () => {
        const ok = (up.statusCode ?? 502) < 500;
        res.writeHead(ok ? (up.statusCode ?? 200) : 502, { "content-type": "application/json" });
        res.end(ok ? Buffer.concat(chunks) : JSON.stringify({ error: "books unavailable" }));
      });
      up.on("error", () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    },
  );
  upstream.on("error", () => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "books unreachable" }));
  });
  upstream.end();
});
