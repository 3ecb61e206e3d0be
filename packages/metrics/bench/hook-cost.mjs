// Per-request CPU cost of the hooks alone, without sockets: real node:http IncomingMessage /
// ServerResponse objects driven through the same steps node:http takes (request start,
// writeHead, end, finish/close), and the metrics() interceptor driven by a dispatch that
// plays a whole response synchronously. Each variant runs in its own process (the h1 hooks
// subscribe to process-wide diagnostics channels); the parent rotates them and reports the
// median ns per request above the bare steps.
//
// Run from packages/metrics after `npx tsup`: node bench/hook-cost.mjs [--baseline=FILE] [--rounds=5]
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : a.slice(name.length + 3);
};

if (process.argv[2] === "--child") {
  await child(process.argv[3], process.argv[4], process.argv[5]);
} else {
  const rounds = Number(arg("rounds", 5));
  const baseline = arg("baseline", undefined);
  const here = fileURLToPath(import.meta.url);
  const current = resolve(here, "../../dist/index.js");
  const builds = { current, ...(baseline ? { baseline: resolve(baseline) } : {}) };
  const results = {};
  for (let r = 0; r < rounds; r++) {
    for (const side of ["server", "client"]) {
      for (const mode of ["noop", "on"]) {
        for (const [name, entry] of Object.entries(builds)) {
          const out = execFileSync(process.execPath, [here, "--child", side, mode, entry], {
            encoding: "utf8",
          });
          const { off, hooked } = JSON.parse(out);
          const key = `${side} ${mode} ${name}`;
          results[key] = [...(results[key] ?? []), hooked - off];
        }
      }
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `Node ${process.version}, ${rounds} rounds; ns per request added by the hooks (median)`,
  );
  console.log("| hooks | build | ns/request |");
  console.log("|---|---|---|");
  for (const [k, v] of Object.entries(results)) {
    const [side, mode, name] = k.split(" ");
    console.log(
      `| ${side === "server" ? "instrumentServer (h1)" : "metrics() interceptor"}, ${mode} | ${name} | ${median(v).toFixed(0)} |`,
    );
  }
}

async function child(side, mode, entry) {
  const m = await import(entry);
  const signals = mode === "on" ? new m.GoldenSignals() : m.NOOP_SIGNALS;
  const n = 200_000;
  const time = (fn) => {
    for (let i = 0; i < 50_000; i++) fn();
    let best = Number.POSITIVE_INFINITY;
    for (let k = 0; k < 5; k++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
    }
    return best;
  };
  if (side === "server") {
    const http = await import("node:http");
    const dc = await import("node:diagnostics_channel");
    const { EventEmitter } = await import("node:events");
    const start = dc.channel("http.server.request.start");
    const finish = dc.channel("http.server.response.finish");
    const socket = new EventEmitter();
    const app = (_req, _res) => {};
    const make = (server) => {
      server.on("request", app);
      const req = new http.IncomingMessage(socket);
      req.method = "GET";
      req.url = "/";
      req.httpVersionMajor = 1;
      req.httpVersionMinor = 1;
      req.headers = { host: "svc:80", "user-agent": "x" };
      const headers = { "content-type": "text/plain", "content-length": "2" };
      // the steps node:http takes per request (message objects only exist with subscribers)
      return () => {
        const res = new http.ServerResponse(req);
        if (start.hasSubscribers) start.publish({ request: req, response: res, socket, server });
        server.emit("request", req, res);
        res.writeHead(200, headers);
        res.end("ok");
        if (finish.hasSubscribers) finish.publish({ request: req, response: res, socket, server });
        res.emit("close");
      };
    };
    const off = time(make(new EventEmitter()));
    const server = new EventEmitter();
    const step = make(server);
    m.instrumentServer(server, { signals, trace: false });
    const hooked = time(step);
    process.stdout.write(JSON.stringify({ off, hooked }));
  } else {
    const controller = {
      abort() {},
      pause() {},
      resume() {},
      paused: false,
      aborted: false,
      reason: null,
    };
    const headers = { "content-type": "text/plain", "content-length": "2" };
    const chunk = Buffer.from("ok");
    const trailers = {};
    const dispatch = (_opts, h) => {
      h.onRequestStart(controller, {});
      h.onResponseStart(controller, 200, headers, "OK");
      h.onResponseData(controller, chunk);
      h.onResponseEnd(controller, trailers);
      return true;
    };
    const sink = {
      onRequestStart() {},
      onResponseStart() {},
      onResponseData() {},
      onResponseEnd() {},
      onResponseError() {},
    };
    const opts = { origin: "http://svc:80", path: "/", method: "GET", headers: {} };
    const off = time(() => dispatch(opts, sink));
    const hookedDispatch = m.metrics({ signals, trace: false })(dispatch);
    const hooked = time(() => hookedDispatch(opts, sink));
    process.stdout.write(JSON.stringify({ off, hooked }));
  }
}
