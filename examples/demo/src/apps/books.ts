/**
 * The books service: answers `GET /books/<id>` with a small JSON body after `--delay-ms`
 * (±20 %), and answers 503 to a `--fail-rate` fraction of requests.
 *
 *   node books.ts --name books-fast --port 0 --delay-ms 5 --fail-rate 0
 */
import { flags, runApp } from "./app.ts";

const f = flags(process.argv.slice(2));
const name = f.name ?? "books";
const delayMs = Number(f["delay-ms"] ?? 5);
const failRate = Number(f["fail-rate"] ?? 0);

runApp(name, Number(f.port ?? 0), (req, res) => {
  req.resume();
  const wait = delayMs * (0.8 + Math.random() * 0.4);
  setTimeout(() => {
    if (Math.random() < failRate) {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "unavailable", replica: name }));
      return;
    }
    const id = (req.url ?? "/").split("/").pop() ?? "";
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id, title: `Book ${id}`, replica: name }));
  }, wait);
});
