import diagnostics from "node:diagnostics_channel";
import type { Socket } from "node:net";
import { meshChannels } from "@mesh/core";
import { Pool, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { type RetryEvent, retry } from "../src/index.js";
import { http1Server, type TestServer } from "./support/servers.js";

const channels = meshChannels.retry;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

/**
 * A request waiting out its backoff must hold nothing: not its connection (the failed
 * response is drained and the socket goes back to the pool), not the requests behind it.
 * Otherwise, on a busy pool, every retry would stall unrelated requests for up to the backoff.
 */
describe("retry() during the backoff", () => {
  it("frees the connection: a one-connection pool serves other requests on the same socket meanwhile", async () => {
    const sockets = new Set<Socket>();
    const s: TestServer = await http1Server(({ seen, res, socket }) => {
      if (socket) sockets.add(socket);
      if (seen.path === "/a") {
        res.writeHead(503, { "content-type": "text/plain" });
        res.end("unavailable, with a body the client must drain");
      } else {
        res.end("b");
      }
    });
    open.push(s);
    const pool = new Pool(s.origin, { connections: 1 });
    open.push(pool);
    // The backoff is known: 0.5 × min(max, base) = 5 s, far longer than this test runs.
    const d = pool.compose(
      retry({ backoff: { base: 10_000, max: 10_000, random: () => 0.5 }, budget: false }),
    );
    const scheduled = new Promise<RetryEvent>((resolve) => {
      const onRetry = (message: unknown) => {
        diagnostics.unsubscribe(channels.retry, onRetry);
        resolve(message as RetryEvent);
      };
      diagnostics.subscribe(channels.retry, onRetry);
    });
    const stop = new AbortController();
    const a = request(`${s.origin}/a`, { dispatcher: d, signal: stop.signal });
    a.catch(() => {});
    // /a failed and its retry is scheduled, 5 s out.
    expect((await scheduled).delayMs).toBe(5000);

    const b = await request(`${s.origin}/b`, { dispatcher: d });
    expect(await b.body.text()).toBe("b");
    // /b was served while /a waited, on the one socket /a had used: nothing held it.
    expect(s.seen.map((x) => x.path)).toEqual(["/a", "/b"]);
    expect(sockets.size).toBe(1);

    // Aborting ends the pending backoff at once; the retry is never sent.
    stop.abort(new Error("caller gave up"));
    await expect(a).rejects.toThrow("caller gave up");
    expect(s.seen).toHaveLength(2);
  });
});
