import { once } from "node:events";
import http2 from "node:http2";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bidi,
  clientStream,
  echoClient,
  serverStream,
  startGrpcServer,
  unary,
  watchThenCancel,
} from "../grpc.js";
import type { ProxyProcess } from "../helpers.js";
import {
  admin,
  BOOKS,
  cleanupAfterAll,
  metric,
  Pki,
  proxy,
  RENEWAL,
  ready,
  until,
  WEB,
} from "./fixtures.js";

type GrpcApp = Awaited<ReturnType<typeof startGrpcServer>>;

/**
 * books' sidecar (inbound, mTLS, policy) in front of a gRPC app, and web's sidecar
 * (outbound) with books' inbound as an endpoint with an identity. `policy` defaults to
 * "web may call /test.Echo/*, nothing else".
 */
async function grpcMesh(pki: Pki, app: GrpcApp, renewal?: Record<string, unknown>) {
  const books = await proxy({
    identity: pki.identity(BOOKS, renewal),
    inbound: {
      listen: "127.0.0.1:0",
      app: app.address,
      policy: {
        default: "deny",
        rules: [{ allow: { identities: [WEB] }, routes: [{ pathPrefix: "/test.Echo" }] }],
      },
    },
  });
  const web = await proxy({
    identity: pki.identity(WEB, renewal),
    outbound: {
      listen: "127.0.0.1:0",
      services: [
        {
          name: "echo",
          discovery: { static: [{ address: books.addresses.inbound, identity: BOOKS }] },
          retry: { on: [] },
        },
      ],
    },
  });
  await Promise.all([ready(books), ready(web)]);
  return { books, web, client: echoClient(web.addresses.outbound as string, "echo") };
}

describe("gRPC through the sidecar pair over mTLS", () => {
  const pki = new Pki();
  let app: GrpcApp;
  let books: ProxyProcess;
  let web: ProxyProcess;
  let client: ReturnType<typeof echoClient>;

  beforeAll(async () => {
    await pki.start();
    app = await startGrpcServer("books");
    ({ books, web, client } = await grpcMesh(pki, app));
  });

  afterAll(async () => {
    client?.close();
    await Promise.all([books?.stop(), web?.stop()]);
    await Promise.all([app?.close(), pki.stop()]);
  });

  it("unary: the app sees web's verified identity in mesh-client-id; metrics say tls", async () => {
    expect(await unary(client, { text: "hi" })).toEqual({
      text: "hi",
      from: "books",
      clientId: WEB,
    });
    const m = (await admin(books, "/metrics")).body;
    expect(
      metric(m, "request_total", 'direction="inbound"', 'tls="true"', `client_id="${WEB}"`),
    ).toBeGreaterThan(0);
  });

  it("server streaming", async () => {
    const got = await serverStream(client, { text: "s", count: 5 });
    expect(got.map((m) => m.text)).toEqual(["s-0", "s-1", "s-2", "s-3", "s-4"]);
  });

  it("a cancelled server stream is cancelled at the app within milliseconds, over mTLS", async () => {
    const seen = once(app.stats.watches, "cancelled").then(() => performance.now());
    const cancelledAt = await watchThenCancel(client, 5);
    expect((await seen) - cancelledAt).toBeLessThan(500);
  });

  it("client streaming", async () => {
    const msgs = Array.from({ length: 50 }, (_, i) => ({ text: `m${i}` }));
    const got = await clientStream(client, msgs);
    expect(got.count).toBe(50);
    expect(got.text).toBe(msgs.map((m) => m.text).join(","));
  });

  it("bidi streaming: each message is answered before the next is sent", async () => {
    const chat = bidi(client);
    for (let i = 0; i < 10; i++) expect((await chat.send(`x${i}`)).text).toBe(`echo:x${i}`);
    await chat.end();
  });

  it("an error status from the app passes through", async () => {
    await expect(unary(client, { fail: status.NOT_FOUND })).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: "failed on purpose 5",
    });
  });

  it("a grpc-js deadline yields DEADLINE_EXCEEDED", async () => {
    await expect(unary(client, { text: "slow", delayMs: 3_000 }, 200)).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
    });
  });

  it("the proxy enforces grpc-timeout itself: trailers-only DEADLINE_EXCEEDED from the sidecar", async () => {
    // A raw h2 client with no deadline of its own, so only the proxy can end the call.
    const session = http2.connect(`http://${web.addresses.outbound}`);
    try {
      const res = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/test.Echo/Unary",
          ":authority": "echo",
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": "200m",
        });
        stream.on("response", resolve);
        stream.on("error", reject);
        const body = Buffer.from(JSON.stringify({ text: "slow", delayMs: 3_000 }));
        const frame = Buffer.alloc(5 + body.length);
        frame.writeUInt32BE(body.length, 1);
        body.copy(frame, 5);
        stream.end(frame);
      });
      expect(res[":status"]).toBe(200);
      expect(res["grpc-status"]).toBe(String(status.DEADLINE_EXCEEDED));
      expect(res["mesh-proxy-error"]).toBeDefined();
    } finally {
      session.close();
    }
  });

  it("PERMISSION_DENIED for a method the policy does not grant web; counted as a deny", async () => {
    const deny = async () =>
      metric((await admin(books, "/metrics")).body, "inbound_http_authz_deny_total");
    const before = await deny();
    await expect(unary(client, { text: "no" }, undefined, "locked")).rejects.toMatchObject({
      code: status.PERMISSION_DENIED,
    });
    expect((await deny()) - before).toBe(1);
    // The same identity is still granted the echo service.
    expect((await unary(client, { text: "yes" })).text).toBe("yes");
  });
});

describe("gRPC under certificate rotation", () => {
  const defer = cleanupAfterAll();

  it("unary and streaming calls across at least two rotations on both sides: zero failures", async () => {
    // SVIDs live 3 s and renew at half their remaining lifetime: about every 1.5 s.
    const pki = new Pki(3_000);
    await pki.start();
    defer(() => pki.stop());
    const app = await startGrpcServer("books");
    defer(() => app.close());
    const { books, web, client } = await grpcMesh(pki, app, RENEWAL);
    defer(
      () => books.stop(),
      () => web.stop(),
      async () => client.close(),
    );
    const refreshes = async (p: ProxyProcess, id: string) =>
      metric((await admin(p, "/metrics")).body, "identity_cert_refresh_total", `spiffe_id="${id}"`);
    const start = {
      web: await refreshes(web, WEB),
      books: await refreshes(books, BOOKS),
    };

    const failures: string[] = [];
    let calls = 0;
    let stop = false;
    const loop = async (call: (i: number) => Promise<boolean>) => {
      for (let i = 0; !stop; i++) {
        const ok = await call(i).catch((e: Error) => {
          failures.push(e.message);
          return true;
        });
        if (ok) calls++;
        else failures.push(`wrong answer on call ${i}`);
      }
    };
    // One bidi stream open across every rotation: established streams are never cut.
    const chat = bidi(client);
    let chatted = 0;
    const chatLoop = async () => {
      while (!stop) {
        if ((await chat.send(`c${chatted}`)).text === `echo:c${chatted}`) chatted++;
        await new Promise((r) => setTimeout(r, 100));
      }
      await chat.end();
    };
    const load = Promise.all([
      loop(async (i) => (await unary(client, { text: `u${i}` })).text === `u${i}`),
      loop(async (i) => (await unary(client, { text: `v${i}` })).text === `v${i}`),
      loop(async (i) => (await serverStream(client, { text: `s${i}`, count: 3 })).length === 3),
      loop(
        async (i) =>
          (await clientStream(client, [{ text: "a" }, { text: `${i}` }])).text === `a,${i}`,
      ),
      chatLoop().catch((e: Error) => failures.push(`bidi: ${e.message}`)),
    ]);
    try {
      // The first certificate, then at least two renewals on each side, all under load.
      await until(
        async () =>
          (await refreshes(web, WEB)) >= start.web + 2 &&
          (await refreshes(books, BOOKS)) >= start.books + 2,
        "two certificate rotations on both proxies",
      );
    } finally {
      stop = true;
      await load;
    }
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(50);
    expect(chatted).toBeGreaterThan(5);
  });
});
