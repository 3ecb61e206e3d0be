import { type ChildProcess, execFile, spawn } from "node:child_process";
import net, { type AddressInfo } from "node:net";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingPeer } from "../../../../scripts/peers.mjs";
import type { ProxyProcess } from "../helpers.js";
import { admin, BOOKS, metric, Pki, proxy, ready, until, WEB } from "./fixtures.js";

const run = promisify(execFile);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A real redis-server (Debian package) on a free loopback port, no persistence. */
async function startRedis(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Ready to accept connections")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
  });
  return { port, child };
}

const port = (a: string) => a.slice(a.lastIndexOf(":") + 1);

/** Redis behind an opaque port, reached through two proxies over mTLS. */
describe.skipIf(missingPeer("redis"))("opaque TCP through the mesh", () => {
  const pki = new Pki();
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let books: ProxyProcess;
  let web: ProxyProcess;
  let local: string;

  beforeAll(async () => {
    await pki.start();
    redis = await startRedis();
    books = await proxy({
      identity: pki.identity(BOOKS),
      inbound: {
        listen: "127.0.0.1:0",
        app: "127.0.0.1:9",
        ports: { "6379": `127.0.0.1:${redis.port}` },
        policy: { default: "all-authenticated" },
      },
    });
    web = await proxy({
      identity: pki.identity(WEB),
      outbound: {
        listen: "127.0.0.1:0",
        tcp: [
          {
            name: "redis",
            listen: "127.0.0.1:0",
            targetPort: 6379,
            discovery: { static: [{ address: books.addresses.inbound, identity: BOOKS }] },
          },
        ],
      },
    });
    await Promise.all([ready(books), ready(web)]);
    local = web.addresses.tcp?.redis as string;
  });

  afterAll(async () => {
    await Promise.all([books?.stop(), web?.stop()]);
    redis?.child.kill();
    await pki.stop();
  });

  it("serves redis-cli and redis-benchmark over mTLS with a transport header, bytes counted on both sides", async () => {
    const cli = (...args: string[]) =>
      run("redis-cli", ["-h", "127.0.0.1", "-p", port(local), ...args], { timeout: 10_000 });
    expect((await cli("SET", "mesh", "hello")).stdout.trim()).toBe("OK");
    expect((await cli("GET", "mesh")).stdout.trim()).toBe("hello");
    const bench = await run(
      "redis-benchmark",
      ["-h", "127.0.0.1", "-p", port(local), "-n", "2000", "-c", "8", "-t", "set,get", "-q"],
      { timeout: 30_000 },
    );
    expect(bench.stdout).toMatch(/SET: [\d.]+ requests per second/);
    expect(bench.stdout).toMatch(/GET: [\d.]+ requests per second/);

    // Every connection closed on both sides: the byte counts agree end to end.
    const scrape = async () => [
      (await admin(web, "/metrics")).body,
      (await admin(books, "/metrics")).body,
    ];
    await until(async () => {
      const [w, b] = await scrape();
      return (
        metric(w as string, "tcp_open_connections") === 0 &&
        metric(b as string, "tcp_open_connections") === 0
      );
    }, "connections to close");
    const [w, b] = (await scrape()) as [string, string];
    const out = ['direction="outbound"', 'tls="true"', `server_id="${BOOKS}"`];
    const inn = ['direction="inbound"', 'tls="true"', `client_id="${WEB}"`];
    const opened = metric(w, "tcp_open_total", ...out);
    expect(opened).toBeGreaterThanOrEqual(3); // two redis-cli runs + the benchmark's clients
    expect(metric(b, "tcp_open_total", ...inn)).toBe(opened);
    const sent = metric(w, "tcp_read_bytes_total", ...out);
    const received = metric(w, "tcp_write_bytes_total", ...out);
    expect(sent).toBeGreaterThan(2000 * 20);
    expect(received).toBeGreaterThan(2000 * 4);
    expect(metric(b, "tcp_read_bytes_total", ...inn)).toBe(sent);
    expect(metric(b, "tcp_write_bytes_total", ...inn)).toBe(received);
    expect(metric(b, "inbound_tcp_authz_allow_total", 'target_port="6379"')).toBe(opened);
  });

  it("closes a plaintext TCP client the policy does not admit, counted", async () => {
    const before = metric((await admin(books, "/metrics")).body, "inbound_tcp_authz_deny_total");
    const [host, p] = (books.addresses.inbound as string).split(":") as [string, string];
    const outcome = await new Promise<string>((resolve) => {
      const s = net.connect(Number(p), host, () => s.write("*1\r\n$4\r\nPING\r\n"));
      let got = "";
      s.on("data", (d) => (got += d.toString()));
      s.on("error", () => undefined);
      s.on("close", () => resolve(got));
    });
    expect(outcome).toBe("");
    const after = metric((await admin(books, "/metrics")).body, "inbound_tcp_authz_deny_total");
    expect(after - before).toBe(1);
  });
});
