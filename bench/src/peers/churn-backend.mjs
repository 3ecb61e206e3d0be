/**
 * The pods of the `k8s-churn` scenario, all in one process: `groups` × `perGroup`
 * endpoints, where group `g` is one port `P_g` listened on at 127.0.0.1 … 127.0.0.<perGroup>
 * (loopback addresses Linux routes to `lo` without configuration). A group is what one
 * EndpointSlice holds: a slice's ports are shared by all its endpoints, and the proxy keys
 * endpoints by address, so ten endpoints of one slice need ten addresses on one port.
 * One process instead of 2000 keeps the machine's 2 cores for the proxy under test.
 *
 * `node churn-backend.mjs '{"groups":200,"perGroup":10}'` prints
 * `READY {"control":<port>,"ports":[P_0,…]}` once every listener is up. Control (HTTP on
 * 127.0.0.1): `GET /stats` → `{requests, perGroup, afterClose}`; `POST /close {"group":g}`
 * stops that group's listeners like a pod that exits: no new connections, requests in flight
 * finish, idle keep-alive connections are closed.
 * Plain JavaScript, as every Node peer (see the README, "Node peers are plain JavaScript").
 */
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer } from "node:net";

const spec = JSON.parse(process.argv[2] ?? "{}");
const groups = Number(spec.groups);
const perGroup = Number(spec.perGroup);
if (!Number.isInteger(groups) || groups < 1 || !Number.isInteger(perGroup) || perGroup < 1)
  throw new TypeError(
    `churn-backend: expected {"groups": n ≥ 1, "perGroup": n ≥ 1}, got ${process.argv[2]}`,
  );
if (perGroup > 254) throw new RangeError(`churn-backend: perGroup ≤ 254, got ${perGroup}`);

const BODY = Buffer.from("ok\n");
/** group index by local port */
const groupOfPort = new Map();
const counts = new Array(groups).fill(0);
const closed = new Set();
/** sockets per group, to end idle ones when the group closes */
const socketsOf = Array.from({ length: groups }, () => new Set());
/** sockets with a request in flight */
const busy = new WeakSet();
let requests = 0;
let afterClose = 0;

const app = createHttpServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const g = groupOfPort.get(req.socket.localPort);
  requests++;
  if (g !== undefined) {
    counts[g]++;
    if (closed.has(g)) afterClose++;
  }
  const socket = req.socket;
  busy.add(socket);
  res.once("finish", () => {
    busy.delete(socket);
    if (g !== undefined && closed.has(g)) socket.end();
  });
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": BODY.length });
    res.end(BODY);
  });
});

const listen = (server, port, host) =>
  new Promise((resolve, reject) => {
    const onError = (error) => reject(error);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve(server.address().port);
    });
  });

/** One group's listeners: a free port on 127.0.0.1, then the same port on the other addresses. */
async function openGroup(g) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const servers = [];
    const make = () => {
      const s = createNetServer((socket) => {
        socketsOf[g].add(socket);
        socket.once("close", () => socketsOf[g].delete(socket));
        app.emit("connection", socket);
      });
      servers.push(s);
      return s;
    };
    try {
      const port = await listen(make(), 0, "127.0.0.1");
      for (let i = 2; i <= perGroup; i++) await listen(make(), port, `127.0.0.${i}`);
      return { port, servers };
    } catch (error) {
      for (const s of servers) s.close();
      if (error.code !== "EADDRINUSE") throw error;
    }
  }
  throw new Error(`churn-backend: no port free on 127.0.0.1–127.0.0.${perGroup} after 50 tries`);
}

const listeners = [];
for (let g = 0; g < groups; g++) {
  const group = await openGroup(g);
  groupOfPort.set(group.port, g);
  listeners.push(group);
}

const control = createHttpServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "GET" && req.url === "/stats") {
      const body = JSON.stringify({ requests, perGroup: counts, afterClose });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
      return;
    }
    if (req.method === "POST" && req.url === "/close") {
      const g = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}").group;
      if (!Number.isInteger(g) || g < 0 || g >= groups) {
        res.writeHead(400).end(`close: expected a group in 0..${groups - 1}, got ${g}\n`);
        return;
      }
      closed.add(g);
      for (const s of listeners[g].servers) s.close();
      // Idle keep-alive connections end now; busy ones after their response.
      for (const socket of socketsOf[g]) if (!busy.has(socket)) socket.end();
      res.writeHead(204).end();
      return;
    }
    res.writeHead(404).end();
  });
});
const controlPort = await listen(control, 0, "127.0.0.1");
process.stdout.write(
  `READY ${JSON.stringify({ control: controlPort, ports: listeners.map((l) => l.port) })}\n`,
);
process.on("SIGTERM", () => process.exit(0));
