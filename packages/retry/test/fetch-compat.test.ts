import { Agent as Agent8, fetch as fetch8 } from "undici";
import { Agent as Agent7, request as request7 } from "undici7";
import { afterEach, describe, expect, it } from "vitest";
import { retry, timeout } from "../src/index.js";
import { failFirst, h2cServer, http1Server, sha256, type TestServer } from "./support/servers.js";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

const interceptors = () => [
  retry({ backoff: { base: 0, max: 0 }, budget: { minRetriesPerSecond: 1000 } }),
  timeout({ request: 10_000, idle: 5_000 }),
];

async function server(h2 = false): Promise<TestServer> {
  const s = h2 ? await h2cServer(failFirst(1)) : await http1Server(failFirst(1));
  open.push(s);
  return s;
}

function track<T extends { destroy(): Promise<void> }>(d: T): T {
  open.push({ close: () => d.destroy() });
  return d;
}

type AnyFetch = (url: string, init: Record<string, unknown>) => Promise<Response>;

const cases: { name: string; fetch: AnyFetch; dispatcher: () => unknown; h2?: boolean }[] = [
  {
    name: "Node's global fetch (bundled undici 7) + undici 7 Agent",
    fetch: globalThis.fetch as AnyFetch,
    dispatcher: () => track(new Agent7()).compose(...interceptors()),
  },
  {
    name: "Node's global fetch (bundled undici 7) + undici 8 Agent",
    fetch: globalThis.fetch as AnyFetch,
    dispatcher: () => track(new Agent8()).compose(...interceptors()),
  },
  {
    name: "undici 8 fetch + undici 8 Agent",
    fetch: fetch8 as unknown as AnyFetch,
    dispatcher: () => track(new Agent8()).compose(...interceptors()),
  },
  {
    name: "undici 8 fetch + undici 7 Agent",
    fetch: fetch8 as unknown as AnyFetch,
    dispatcher: () => track(new Agent7()).compose(...interceptors()),
  },
  {
    // undici 7 reads useH2c from the connect options (undici 8 also takes it at the top level).
    name: "Node's global fetch + undici 7 Agent over h2c",
    fetch: globalThis.fetch as AnyFetch,
    dispatcher: () =>
      track(new Agent7({ allowH2: true, connect: { useH2c: true } as object })).compose(
        ...interceptors(),
      ),
    h2: true,
  },
];

describe("fetch × dispatcher compatibility", () => {
  for (const c of cases) {
    it(`${c.name}: retries, replays the body, streams the response`, async () => {
      const s = await server(c.h2);
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("streamed "));
          controller.enqueue(new TextEncoder().encode("request body"));
          controller.close();
        },
      });
      const res = await c.fetch(s.origin, {
        method: "PUT",
        body,
        duplex: "half",
        dispatcher: c.dispatcher(),
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("ok 1");
      const h = sha256("streamed request body");
      expect(s.seen.map((x) => x.bodySha256)).toEqual([h, h]);
    });
  }

  it("undici 7 request() through undici 7 Agent", async () => {
    const s = await server();
    const d = track(new Agent7()).compose(...interceptors());
    const res = await request7(s.origin, { dispatcher: d });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe("ok 1");
  });
});
