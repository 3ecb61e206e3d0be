import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h1App, launch, type ProxyProcess } from "./helpers.js";
import { admin, get, metric } from "./mesh/fixtures.js";

/**
 * services[].hedge: one outbound proxy, two plaintext HTTP/1.1 endpoints of "books". The
 * very first request either endpoint sees is stalled (never answered); every later one is
 * answered at once with the endpoint's name.
 */
describe("hedging (services[].hedge)", () => {
  let a: Awaited<ReturnType<typeof h1App>>;
  let b: Awaited<ReturnType<typeof h1App>>;
  let proxy: ProxyProcess;
  let stalled = false;
  let onCancel!: () => void;
  const cancelled = new Promise<void>((r) => {
    onCancel = r;
  });

  beforeAll(async () => {
    const app = (name: string) =>
      h1App((req, res) => {
        req.resume();
        if (!stalled) {
          stalled = true;
          res.on("close", () => {
            if (!res.writableFinished) onCancel();
          });
          return;
        }
        res.end(name);
      });
    [a, b] = await Promise.all([app("a"), app("b")]);
    proxy = await launch({
      outbound: {
        listen: "127.0.0.1:0",
        services: [
          {
            name: "books",
            discovery: { static: [a.address, b.address] },
            hedge: { delay: "30ms" },
          },
        ],
      },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  it("a stalled endpoint is hedged to the other one, the stalled attempt is cancelled, and hedges are counted", async () => {
    const r = await get(proxy.addresses.outbound as string, "books", "/item");
    expect(r.status).toBe(200);
    expect(["a", "b"]).toContain(r.body);
    // The proxy gave up on the stalled attempt: its connection to the endpoint closed.
    await cancelled;
    const m = (await admin(proxy, "/metrics")).body;
    expect(metric(m, "mesh_retry_hedges_total", 'name="books/')).toBe(1);
    expect(metric(m, "mesh_retry_hedges_won_total", 'name="books/')).toBe(1);
  });
});
