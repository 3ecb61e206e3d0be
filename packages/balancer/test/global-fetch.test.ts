import { createHash } from "node:crypto";
import { once } from "node:events";
import type http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Balancer, seededRandom } from "../src/index.js";
import { startServer } from "./helpers.js";

// Node 24's global fetch runs on its bundled undici 7 and passes a legacy handler, which the
// Balancer adapts (via @mesh/core) before its undici 8 pools see it.
const globalFetch = globalThis.fetch as (url: string, init: object) => Promise<Response>;

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

function balancer(address: string): Balancer {
  const b = new Balancer({ endpoints: [address], random: seededRandom(1) });
  cleanup.push(() => b.destroy());
  return b;
}

/** Resolves once `check()` holds, polling once per event-loop turn (bounded by the test timeout). */
function until(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => (check() ? resolve() : setImmediate(poll));
    poll();
  });
}

describe("Balancer under Node's global fetch", () => {
  it("sends a streamed body and returns repeated headers as separate values", async () => {
    const s = await startServer((req, res) => {
      const hash = createHash("sha256");
      req.on("data", (c: Buffer) => hash.update(c));
      req.on("end", () => {
        res.setHeader("set-cookie", ["a=1", "b=2"]);
        res.end(hash.digest("hex"));
      });
      return true;
    });
    cleanup.push(() => s.close());
    const part = Buffer.alloc(128 * 1024, "m");
    const res = await globalFetch("http://api.internal/upload", {
      method: "PUT",
      body: new ReadableStream({
        start(c) {
          c.enqueue(part);
          c.enqueue(part);
          c.close();
        },
      }),
      duplex: "half",
      dispatcher: balancer(s.address),
    });
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    const expected = createHash("sha256")
      .update(Buffer.concat([part, part]))
      .digest("hex");
    expect(await res.text()).toBe(expected);
  });

  it("an abort mid-body closes the upstream connection and settles the endpoint as neutral", async () => {
    let upstream: http.ServerResponse | undefined;
    const s = await startServer((_req, res) => {
      upstream = res;
      res.writeHead(200);
      res.write("first");
      return true;
    });
    cleanup.push(() => s.close());
    const b = balancer(s.address);
    const ac = new AbortController();
    const res = await globalFetch("http://api.internal/slow", { dispatcher: b, signal: ac.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    expect(Buffer.from((await reader.read()).value!).toString()).toBe("first");
    const closed = once(upstream!, "close");
    ac.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: "AbortError" });
    await closed;
    // The dispatcher reports the abort on its own schedule: wait for the exchange to settle.
    await until(() => b.snapshot().endpoints[0]?.pending === 0);
    const [endpoint] = b.snapshot().endpoints;
    expect(endpoint).toMatchObject({ pending: 0, requests: 1, failures: 0, state: "ready" });
  });
});
