import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import {
  admin,
  BOOKS,
  CountingRelay,
  echoApp,
  get,
  metric,
  Pki,
  proxy,
  ready,
  until,
  WEB,
} from "./fixtures.js";

/** A TCP echo server (the opaque "app" behind books). */
async function tcpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** One short opaque TCP exchange through `address`: resolves true when the echo came back. */
function tcpRoundTrip(address: string, payload: string): Promise<boolean> {
  const [host, port] = address.split(":") as [string, string];
  return new Promise((resolve) => {
    let got = "";
    const s = net.connect(Number(port), host, () => s.write(payload));
    s.on("data", (d) => {
      got += d.toString();
      if (got === payload) s.end();
    });
    s.on("error", () => resolve(false));
    s.on("close", () => resolve(got === payload));
  });
}

const RENEWAL = { fraction: 0.5, min: "200ms", retryInitial: "200ms", retryMax: "1s" };

/** Starts books (inbound: HTTP app + TCP echo on opaque port 7000) and web (outbound via a relay). */
async function meshPair(pki: Pki, app: string, echoPort: number) {
  const books = await proxy({
    identity: pki.identity(BOOKS, RENEWAL),
    inbound: {
      listen: "127.0.0.1:0",
      app,
      opaquePorts: [7000],
      ports: { "7000": `127.0.0.1:${echoPort}` },
      policy: { default: "all-authenticated" },
    },
  });
  const relay = new CountingRelay(books.addresses.inbound as string);
  const viaRelay = await relay.listen();
  const web = await proxy({
    identity: pki.identity(WEB, RENEWAL),
    outbound: {
      listen: "127.0.0.1:0",
      services: [
        { name: "books", discovery: { static: [{ address: viaRelay, identity: BOOKS }] } },
      ],
      tcp: [
        {
          name: "echo",
          listen: "127.0.0.1:0",
          targetPort: 7000,
          discovery: { static: [{ address: books.addresses.inbound, identity: BOOKS }] },
        },
      ],
    },
  });
  return {
    books,
    web,
    relay,
    tcp: web.addresses.tcp?.echo as string,
  };
}

describe("certificate rotation", () => {
  const cleanup: (() => Promise<unknown> | undefined)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it("rotates 3 s certificates under continuous HTTP and TCP load with zero failures", async () => {
    // SVIDs live 3 s and renew at half their remaining lifetime (min 200 ms): a new
    // certificate about every 1.5 s on both proxies during the 6 s of load.
    const pki = new Pki(3_000);
    await pki.start();
    cleanup.push(() => pki.stop());
    const app = await echoApp();
    const echo = await tcpEcho();
    cleanup.push(
      () => app.close(),
      () => echo.close(),
    );
    const { books, web, relay, tcp } = await meshPair(pki, app.address, echo.port);
    cleanup.push(
      () => books.stop(),
      () => web.stop(),
      () => relay.close(),
    );
    await Promise.all([ready(books), ready(web)]);

    const out = web.addresses.outbound as string;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    cleanup.push(async () => agent.destroy());
    const failures: string[] = [];
    let http1 = 0;
    let tcpOk = 0;
    const end = Date.now() + 6_000;
    const httpLoop = async () => {
      while (Date.now() < end) {
        const r = await get(out, "books", "/rotate", {}, agent).catch((e: Error) => ({
          status: 0,
          body: e.message,
          headers: {},
        }));
        if (r.status === 200) http1++;
        else failures.push(`http ${r.status} ${r.body}`);
      }
    };
    const tcpLoop = async () => {
      let i = 0;
      while (Date.now() < end) {
        // Each exchange is a new mTLS handshake with whatever certificates are current.
        if (await tcpRoundTrip(tcp, `ping-${i++}`)) tcpOk++;
        else failures.push(`tcp ${i}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await Promise.all([httpLoop(), httpLoop(), httpLoop(), httpLoop(), tcpLoop()]);

    expect(failures).toEqual([]);
    expect(http1).toBeGreaterThan(100);
    expect(tcpOk).toBeGreaterThan(10);
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
    cleanup.push(
      () => app.close(),
      () => echo.close(),
    );
    // Issuer down before the proxies start: not ready until an SVID is held.
    await pki.stop();
    const { books, web, relay, tcp } = await meshPair(pki, app.address, echo.port);
    cleanup.push(
      () => books.stop(),
      () => web.stop(),
      () => relay.close(),
    );
    expect((await admin(web, "/ready")).status).toBe(503);
    await pki.start();
    cleanup.push(() => pki.stop());
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
