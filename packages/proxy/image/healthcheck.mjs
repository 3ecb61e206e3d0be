#!/usr/bin/env node
// The image's HEALTHCHECK: exits 0 when the proxy's admin `/live` answers 200, 1 otherwise.
// Distroless bases have no shell or curl, so this runs on the image's own node.
//
// Target, first match wins:
//   argv[2]                        a full URL (`node healthcheck.mjs http://127.0.0.1:9991/live`)
//   MESH_PROXY_ADMIN__LISTEN       the admin address override the proxy itself reads
//   http://127.0.0.1:4191/live     the proxy's default admin address
import { request } from "node:http";

const TIMEOUT_MS = 2_000;

function target() {
  if (process.argv[2]) return new URL(process.argv[2]);
  const listen = process.env.MESH_PROXY_ADMIN__LISTEN;
  if (listen) {
    const at = listen.lastIndexOf(":");
    let host = listen.slice(0, at);
    // A wildcard listen address is reachable on loopback.
    if (host === "" || host === "0.0.0.0") host = "127.0.0.1";
    if (host === "[::]") host = "[::1]";
    return new URL(`http://${host}:${listen.slice(at + 1)}/live`);
  }
  return new URL("http://127.0.0.1:4191/live");
}

function fail(reason) {
  process.stderr.write(`healthcheck: ${reason}\n`);
  process.exit(1);
}

let url;
try {
  url = target();
} catch (err) {
  fail(`bad target: ${err.message}`);
}

const req = request(url, { method: "GET", timeout: TIMEOUT_MS, agent: false }, (res) => {
  res.resume();
  if (res.statusCode === 200) process.exit(0);
  fail(`${url.href}: expected 200, got ${res.statusCode}`);
});
req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
req.on("error", (err) => fail(`${url.href}: ${err.message}`));
req.end();
