import { describe, expect, it } from "vitest";
import {
  admin,
  BOOKS,
  cleanupAfterAll,
  echoApp,
  get,
  issuedIdentities,
  MeshLoad,
  meshPair,
  metric,
  Pki,
  ready,
  startMesh,
  tcpEcho,
  tcpRoundTrip,
  until,
  WEB,
} from "./fixtures.js";

describe("certificate rotation", () => {
  const defer = cleanupAfterAll();

  it("rotates 3 s certificates under continuous HTTP and TCP load with zero failures", async () => {
    // SVIDs live 3 s and renew at half their remaining lifetime (min 200 ms): a new
    // certificate about every 1.5 s on both proxies during the 6 s of load.
    const { books, web, relay, tcp } = await startMesh(new Pki(3_000), defer);
    const load = new MeshLoad({ outbound: web.addresses.outbound as string, httpLoops: 4, tcp });
    await new Promise((r) => setTimeout(r, 6_000));
    await load.stop();

    expect(load.failures).toEqual([]);
    expect(load.http).toBeGreaterThan(100);
    expect(load.tcp).toBeGreaterThan(10);
    const wm = (await admin(web, "/metrics")).body;
    const bm = (await admin(books, "/metrics")).body;
    // First certificate + at least 3 renewals on each side.
    expect(metric(wm, "identity_cert_refresh_total", `spiffe_id="${WEB}"`)).toBeGreaterThanOrEqual(
      4,
    );
    expect(
      metric(bm, "identity_cert_refresh_total", `spiffe_id="${BOOKS}"`),
    ).toBeGreaterThanOrEqual(4);
    // The HTTP/2 connection opened with the first certificates carried on across rotations.
    expect(relay.accepted).toBe(1);
  });

  it("keeps serving and stays ready on the current certificate while the issuer is down, recovers when it returns", async () => {
    const pki = new Pki(6_000);
    await pki.start();
    const app = await echoApp();
    const echo = await tcpEcho();
    defer(
      () => app.close(),
      () => echo.close(),
    );
    // Issuer down before the proxies start: not ready until an SVID is held.
    await pki.stop();
    const { books, web, relay, tcp } = await meshPair(
      issuedIdentities(pki),
      app.address,
      echo.port,
    );
    defer(
      () => books.stop(),
      () => web.stop(),
      () => relay.close(),
    );
    expect((await admin(web, "/ready")).status).toBe(503);
    await pki.start();
    defer(() => pki.stop());
    await Promise.all([ready(books), ready(web)]);
    const refreshes = async () =>
      metric(
        (await admin(web, "/metrics")).body,
        "identity_cert_refresh_total",
        `spiffe_id="${WEB}"`,
      );
    const before = await refreshes();

    await pki.stop();
    await until(
      async () =>
        metric(
          (await admin(web, "/metrics")).body,
          "identity_cert_refresh_failures_total",
          `spiffe_id="${WEB}"`,
        ) >= 1,
      "a failed renewal",
    );
    // The current certificate (valid for seconds more) keeps both working.
    expect((await admin(web, "/ready")).status).toBe(200);
    expect((await get(web.addresses.outbound as string, "books", "/still")).status).toBe(200);
    expect(await tcpRoundTrip(tcp, "still")).toBe(true);

    await pki.start();
    await until(async () => (await refreshes()) > before, "renewal after the issuer returned");
    expect((await admin(web, "/ready")).status).toBe(200);
    expect((await get(web.addresses.outbound as string, "books", "/again")).status).toBe(200);
    expect(await tcpRoundTrip(tcp, "again")).toBe(true);
  });
});
