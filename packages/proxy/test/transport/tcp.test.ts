import { once } from "node:events";
import {
  type AddressInfo,
  createServer,
  connect as netConnect,
  type Server,
  type Socket,
} from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { forwardTcp, type TcpForward } from "../../src/transport/tcp-forward.js";
import { RawListener, readAll } from "./helpers.js";

async function listen(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

let proxy: RawListener;
let proxyPort: number;
beforeAll(async () => {
  proxy = new RawListener();
  proxyPort = await proxy.listen();
});
afterAll(() => proxy.close());

/** client → proxy listener → forwardTcp → upstream at `upstreamPort`. */
async function through(upstreamPort: number, options: Parameters<typeof forwardTcp>[2] = {}) {
  const client = netConnect({ host: "127.0.0.1", port: proxyPort });
  client.on("error", () => {});
  const accepted = await proxy.accept();
  const upstream = netConnect({ host: "127.0.0.1", port: upstreamPort });
  upstream.on("error", () => {});
  await once(upstream, "connect");
  const fwd: TcpForward = forwardTcp(accepted, upstream, options);
  return { client, fwd };
}

describe("forwardTcp", () => {
  it("copies bytes both ways with backpressure and counts them", async () => {
    const echo = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    const echoPort = await listen(echo);
    let reads = 0;
    let writes = 0;
    const { client, fwd } = await through(echoPort, {
      onRead: (n) => (reads += n),
      onWrite: (n) => (writes += n),
    });
    const payload = Buffer.alloc(4 * 1024 * 1024, 7);
    client.end(payload);
    const back = await readAll(client);
    expect(back.equals(payload)).toBe(true);
    const result = await fwd.done;
    expect(result).toEqual({
      reason: "closed",
      bytesRead: payload.length,
      bytesWritten: payload.length,
    });
    expect([reads, writes]).toEqual([payload.length, payload.length]);
    echo.close();
  });

  it("keeps the reverse direction open after a half-close", async () => {
    // Answers only once the client has finished sending.
    const upstream = createServer({ allowHalfOpen: true }, async (s) => {
      const got = await readAll(s);
      s.end(`got ${got.length} bytes`);
    });
    const port = await listen(upstream);
    const { client, fwd } = await through(port);
    client.end("hello world");
    expect((await readAll(client)).toString()).toBe("got 11 bytes");
    expect((await fwd.done).reason).toBe("closed");
    upstream.close();
  });

  it("resets the client when the upstream fails", async () => {
    const upstream = createServer((s: Socket) => {
      s.once("data", () => s.resetAndDestroy());
    });
    const port = await listen(upstream);
    const { client, fwd } = await through(port);
    const clientError = once(client, "error");
    client.write("boom");
    const result = await fwd.done;
    expect(result.reason).toBe("error");
    expect(result.side).toBe("upstream");
    expect(((await clientError)[0] as NodeJS.ErrnoException).code).toBe("ECONNRESET");
    upstream.close();
  });

  it("closes both sides after the idle timeout", async () => {
    const upstream = createServer(() => {});
    const port = await listen(upstream);
    const { client, fwd } = await through(port, { idleTimeoutMs: 50 });
    client.write("x");
    const clientClosed = readAll(client); // resolves when the proxy closes the client
    const result = await fwd.done;
    expect(result).toMatchObject({ reason: "idle", bytesRead: 1 });
    await clientClosed;
    upstream.close();
  });

  it("validates its options", () => {
    const a = netConnect({ port: 1, host: "127.0.0.1" });
    a.on("error", () => {});
    expect(() => forwardTcp(a, a, { idleTimeoutMs: -1 })).toThrow(
      "options.idleTimeoutMs: expected a duration in ms in 1..2147483647, got -1",
    );
    a.destroy();
  });
});
