import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { once } from "node:events";
import { renameSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { TLSSocket } from "node:tls";
import { Agent, request } from "undici";
import { afterEach, describe, expect, test } from "vitest";
import {
  createIssuer,
  createTrustAnchor,
  DEFAULT_RENEWAL,
  exportPrivateKeyPem,
  type Issuer,
  matchTrustDomain,
  peerSpiffeId,
  type RefreshFailedEvent,
  renewalDelay,
  retryDelay,
  type SvidEvent,
  SvidSource,
  secureServer,
  serverTlsOptions,
  staticTokenAuthenticator,
  undiciConnector,
} from "../src/index.js";
import { fakeClock, listen, writeFiles } from "./helpers.js";

const anchor = createTrustAnchor({ trustDomain: "prod.example" });
const SERVER_ID = "spiffe://prod.example/ns/prod/sa/api";
const CLIENT_ID = "spiffe://prod.example/ns/prod/sa/web";
const tokens = staticTokenAuthenticator({ "server-token": SERVER_ID, "client-token": CLIENT_ID });

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function startIssuer(svidTtlMs: number, port = 0): Promise<{ issuer: Issuer; url: string }> {
  const issuer = createIssuer({ ca: anchor.createAuthority({ svidTtlMs }), authenticator: tokens });
  const url = await issuer.listen(port);
  cleanup.push(() => issuer.close());
  return { issuer, url };
}

describe("renewal schedule (pure, injectable clock)", () => {
  const H = 3600_000;
  test("70 % of the remaining lifetime, clamped to 10 s..24 h, never past 90 % of it", () => {
    expect(renewalDelay(0, 24 * H)).toBe(60_480_000);
    expect(renewalDelay(0, 100 * H)).toBe(24 * H); // upper clamp
    expect(renewalDelay(0, 20_000)).toBe(14_000);
    expect(renewalDelay(0, 12_000)).toBe(10_000); // lower clamp
    expect(renewalDelay(0, 10_000)).toBe(9_000); // clamp would reach expiry: 90 % wins
    expect(renewalDelay(5_000, 4_000)).toBe(0); // already expired: now
    expect(renewalDelay(0, 4_000, { ...DEFAULT_RENEWAL, minDelayMs: 100 })).toBe(2_800);
  });
  test("retries back off exponentially with jitter, pulled in while the SVID is valid", () => {
    const p = { initialMs: 1000, maxMs: 30_000 };
    expect(retryDelay(0, p, 0, () => 0.5)).toBe(1000);
    expect(retryDelay(3, p, 0, () => 0.5)).toBe(8000);
    expect(retryDelay(10, p, 0, () => 0.5)).toBe(30_000);
    expect(retryDelay(10, p, 0, () => 0)).toBe(24_000);
    expect(retryDelay(10, p, 10_000, () => 0.5)).toBe(5_000); // half of what is left
  });
  test("a source schedules its renewal from the injected clock", async () => {
    const { url } = await startIssuer(24 * H);
    const clock = fakeClock();
    const source = SvidSource.fromIssuer({
      url,
      spiffeId: CLIENT_ID,
      token: "client-token",
      clock,
    });
    cleanup.push(() => source.close());
    const { svid } = await source.ready();
    expect(source.nextRefreshAt).toBe(
      clock.now() + Math.round(0.7 * (svid.notAfter - clock.now())),
    );
    expect(source.isReady()).toBe(true);
    expect(source.expiresAt).toBe(svid.notAfter);
    clock.set(svid.notAfter);
    expect(source.isReady()).toBe(false); // expired by the clock: not ready
  });
  test("options are validated", () => {
    expect(() =>
      SvidSource.fromIssuer({ url: "http://x", spiffeId: CLIENT_ID, token: "t", minRefreshMs: -5 }),
    ).toThrow("options.minRefreshMs: expected a duration in ms in 1..");
    expect(() => SvidSource.fromIssuer({ url: "", spiffeId: CLIENT_ID, token: "t" })).toThrow(
      'options.url: expected a non-empty string, got ""',
    );
  });
});

describe("rotation", () => {
  test("continuous requests across several rotations on both sides: zero failures", async () => {
    const { url } = await startIssuer(4000);
    const timing = { minRefreshMs: 100, retryInitialMs: 50 };
    const serverSource = SvidSource.fromIssuer({
      url,
      spiffeId: SERVER_ID,
      token: "server-token",
      ...timing,
    });
    const clientSource = SvidSource.fromIssuer({
      url,
      spiffeId: CLIENT_ID,
      token: "client-token",
      ...timing,
    });
    cleanup.push(
      () => serverSource.close(),
      () => clientSource.close(),
    );
    await Promise.all([serverSource.ready(), clientSource.ready()]);

    const serverSerials = new Set<string>();
    const clientSerials = new Set<string>();
    const server = createHttpsServer(serverTlsOptions(serverSource), (req, res) => {
      const s = req.socket as TLSSocket;
      serverSerials.add((s.getCertificate() as { serialNumber: string }).serialNumber);
      clientSerials.add(s.getPeerCertificate().serialNumber);
      res.end(String(peerSpiffeId(s)));
    });
    server.keepAliveTimeout = 60_000;
    secureServer(server, serverSource, { authorize: matchTrustDomain("prod.example") });
    const port = await listen(server);
    cleanup.push(
      () => new Promise((r) => server.close(r)),
      () => server.closeAllConnections(),
    );
    const agent = new Agent({ connect: undiciConnector(clientSource, { expect: SERVER_ID }) });
    cleanup.push(() => agent.close());

    let updates = 0;
    const onUpdate = () => updates++;
    serverSource.on("update", onUpdate);
    clientSource.on("update", onUpdate);
    let ok = 0;
    const failures: unknown[] = [];
    const worker = async (n: number) => {
      // Each source rotates at least twice (three SVIDs each).
      for (let i = 0; updates < 4 || serverSerials.size < 3 || clientSerials.size < 3; i++) {
        try {
          // Some requests close their connection so new handshakes keep happening.
          const res = await request(`https://127.0.0.1:${port}/`, {
            dispatcher: agent,
            reset: (i + n) % 4 === 0,
          });
          const body = await res.body.text();
          if (res.statusCode === 200 && body === CLIENT_ID) ok++;
          else failures.push(`${res.statusCode} ${body}`);
        } catch (e) {
          failures.push(e);
        }
      }
    };
    await Promise.all([worker(0), worker(1), worker(2), worker(3)]);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect(serverSerials.size).toBeGreaterThanOrEqual(3);
    expect(clientSerials.size).toBeGreaterThanOrEqual(3);
  }, 30_000);

  test("issuer down during renewal: the old SVID keeps serving, the source recovers", async () => {
    const { issuer, url } = await startIssuer(60_000);
    const port = Number(new URL(url).port);
    const source = SvidSource.fromIssuer({
      url,
      spiffeId: SERVER_ID,
      token: "server-token",
      retryInitialMs: 50,
      retryMaxMs: 200,
    });
    cleanup.push(() => source.close());
    const first = await source.ready();
    const server = createHttpsServer(serverTlsOptions(source), (_req, res) => res.end("ok"));
    secureServer(server, source, { authorize: matchTrustDomain("prod.example") });
    const sport = await listen(server);
    cleanup.push(
      () => new Promise((r) => server.close(r)),
      () => server.closeAllConnections(),
    );
    const client = SvidSource.fromSvid(anchor.createAuthority().issue(CLIENT_ID), anchor.bundle);
    const agent = new Agent({ connect: undiciConnector(client, { expect: SERVER_ID }) });
    cleanup.push(() => agent.close());
    const get = async () =>
      await (
        await request(`https://127.0.0.1:${sport}/`, { dispatcher: agent, reset: true })
      ).body.text();

    const failed: RefreshFailedEvent[] = [];
    const onFailed = (m: unknown) => failed.push(m as RefreshFailedEvent);
    subscribe("mesh:identity:refresh-failed", onFailed);
    cleanup.push(() => unsubscribe("mesh:identity:refresh-failed", onFailed));

    await issuer.close();
    const failure = once(source, "refresh-failed");
    void source.refreshNow();
    const [{ error, retryInMs }] = (await failure) as [
      { error: Error & { code: string }; retryInMs: number },
    ];
    expect(error.code).toBe("MESH_IDENTITY_ISSUER_UNAVAILABLE");
    expect(retryInMs).toBeGreaterThan(0);
    expect(source.svid).toBe(first.svid); // still the old one
    expect(source.isReady()).toBe(true);
    expect(await get()).toBe("ok"); // and it still serves
    expect(failed[0]?.spiffeId).toBe(SERVER_ID);

    const svidEvents: SvidEvent[] = [];
    const onSvid = (m: unknown) => svidEvents.push(m as SvidEvent);
    subscribe("mesh:identity:svid", onSvid);
    cleanup.push(() => unsubscribe("mesh:identity:svid", onSvid));
    const updated = once(source, "update");
    await startIssuer(60_000, port); // the issuer comes back on the same address
    await updated;
    expect(source.svid.serialNumber).not.toBe(first.svid.serialNumber);
    expect(svidEvents[0]).toEqual({
      spiffeId: SERVER_ID,
      notBefore: source.svid.notBefore,
      notAfter: source.svid.notAfter,
      serialNumber: source.svid.serialNumber,
      source: "issuer",
    });
    expect(await get()).toBe("ok");
  }, 20_000);
});

describe("file source", () => {
  test("loads PEM files, hot-reloads on change, keeps the old SVID when files are half-written", async () => {
    const ca = anchor.createAuthority();
    const first = ca.issue(SERVER_ID);
    const f = writeFiles({
      "svid.pem": first.chainPem,
      "svid.key.pem": exportPrivateKeyPem(first.privateKey),
      "bundle.pem": anchor.bundle.pem,
    });
    const source = SvidSource.fromFiles({
      certFile: f.path("svid.pem"),
      keyFile: f.path("svid.key.pem"),
      bundleFile: f.path("bundle.pem"),
      retryInitialMs: 20,
      retryMaxMs: 50,
    });
    cleanup.push(() => source.close());
    expect((await source.ready()).svid.serialNumber).toBe(first.serialNumber);

    // A torn write (new cert, old key) is refused; the current SVID stays.
    const second = ca.issue(SERVER_ID);
    const failed = once(source, "refresh-failed");
    writeFileSync(f.path("svid.pem"), second.chainPem);
    const [{ error }] = (await failed) as [{ error: Error }];
    expect(error.message).toMatch(/private key does not match/);
    expect(source.svid.serialNumber).toBe(first.serialNumber);

    // The key lands (atomically, by rename): the new SVID is applied.
    const updated = once(source, "update");
    writeFileSync(f.path("svid.key.pem.tmp"), exportPrivateKeyPem(second.privateKey));
    renameSync(f.path("svid.key.pem.tmp"), f.path("svid.key.pem"));
    await updated;
    expect(source.svid.serialNumber).toBe(second.serialNumber);
  });
});
