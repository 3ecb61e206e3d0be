import { spawn } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { once } from "node:events";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import {
  createServer as createHttp2Server,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from "node:http2";
import { createServer as createHttpsServer } from "node:https";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import fc from "fast-check";
import { afterEach, describe, expect, test } from "vitest";
import {
  clientTlsOptions,
  createTrustAnchor,
  IdentityError,
  matchTrustDomain,
  type SvidEvent,
  SvidSource,
  secureServer,
  serverTlsOptions,
  TrustBundle,
  X509BundleSource,
} from "../src/index.js";
import { decodeX509BundlesResponse, decodeX509SvidResponse } from "../src/workload-api/protobuf.js";
import { splitDer } from "../src/workload-api/x509-context.js";
import { FakeSpireAgent, svidMessage, type X509SvidResponse } from "./fake-spire-agent.js";
import { listen, tempDir } from "./helpers.js";

const TD = "prod.example";
const API = `spiffe://${TD}/ns/prod/sa/api`;
const WEB = `spiffe://${TD}/ns/prod/sa/web`;
const anchor = createTrustAnchor({ trustDomain: TD });
const ca = anchor.createAuthority();

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** The serializer grpc-js builds from workload.proto (protobufjs): an independent encoder. */
const serialize = (() => {
  const proto = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "workload.proto");
  const def = protoLoader.loadSync(proto, { keepCase: true, defaults: true });
  const svc = (
    grpc.loadPackageDefinition(def) as unknown as {
      SpiffeWorkloadAPI: grpc.ServiceClientConstructor;
    }
  ).SpiffeWorkloadAPI.service;
  const method = svc.FetchX509SVID as grpc.MethodDefinition<unknown, X509SvidResponse>;
  return (r: X509SvidResponse) => method.responseSerialize(r);
})();

function response(id = API, bundle = ca.bundle): X509SvidResponse {
  return { svids: [svidMessage(ca.issue(id), bundle)] };
}

async function startAgent(): Promise<FakeSpireAgent> {
  const agent = await FakeSpireAgent.start();
  cleanup.push(() => agent.close());
  return agent;
}

function source(
  agent: FakeSpireAgent,
  extra: Parameters<typeof SvidSource.fromWorkloadApi>[0] = {},
) {
  const s = SvidSource.fromWorkloadApi({
    socket: agent.address,
    retryInitialMs: 5,
    retryMaxMs: 20,
    ...(typeof extra === "object" ? extra : {}),
  });
  cleanup.push(() => s.close());
  return s;
}

/** An HTTPS server with mTLS on `material`, accepting any client of the trust domain. */
async function mtlsServer(material: SvidSource): Promise<number> {
  const https = createHttpsServer(serverTlsOptions(material), (_req, res) => res.end("ok"));
  secureServer(https, material, { authorize: matchTrustDomain(TD) });
  cleanup.push(() => {
    https.closeAllConnections();
    https.close();
  });
  return listen(https);
}

/** The serial number of the certificate a TLS server presents on a new connection. */
async function servedSerial(port: number, client: SvidSource): Promise<string> {
  const socket = tlsConnect({
    ...clientTlsOptions(client, { expect: API }),
    host: "127.0.0.1",
    port,
  });
  await once(socket, "secureConnect");
  const serial = socket.getPeerX509Certificate()?.serialNumber ?? "";
  socket.destroy();
  return serial;
}

describe("Workload API protobuf (hand-written decoder)", () => {
  const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
  const text = fc.string({ maxLength: 20 });
  const svid = fc.record({
    spiffe_id: text,
    x509_svid: bytes,
    x509_svid_key: bytes,
    bundle: bytes,
    hint: text,
  });
  const resp = fc.record({
    svids: fc.array(svid, { maxLength: 3 }),
    crl: fc.array(bytes, { maxLength: 2 }),
    federated_bundles: fc.dictionary(text, bytes, { maxKeys: 3 }),
  });

  test("decodes what protobufjs encodes, for any X509SVIDResponse", () => {
    fc.assert(
      fc.property(resp, (r) => {
        const got = decodeX509SvidResponse(serialize(r));
        expect(
          got.svids.map((s) => ({
            spiffe_id: s.spiffeId,
            x509_svid: s.x509Svid,
            x509_svid_key: s.x509SvidKey,
            bundle: s.bundle,
            hint: s.hint,
          })),
        ).toEqual(r.svids);
        expect(got.crl).toEqual(r.crl);
        expect(Object.fromEntries(got.federatedBundles)).toEqual(r.federated_bundles);
      }),
    );
  });

  test("skips unknown fields of every wire type (a newer agent's additions)", () => {
    fc.assert(
      fc.property(resp, (r) => {
        const unknown = Buffer.from([
          0xf8,
          0x07,
          0x96,
          0x01, // field 127 varint 150
          0x81,
          0x08,
          1,
          2,
          3,
          4,
          5,
          6,
          7,
          8, // field 128 fixed64
          0x8a,
          0x08,
          0x02,
          0xaa,
          0xbb, // field 129 bytes
          0x95,
          0x08,
          1,
          2,
          3,
          4, // field 130 fixed32
        ]);
        const got = decodeX509SvidResponse(Buffer.concat([unknown, serialize(r), unknown]));
        expect(got.svids.length).toBe(r.svids.length);
      }),
    );
  });

  test("any byte string decodes or fails with MESH_IDENTITY_WORKLOAD_API_INVALID, never otherwise", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (a) => {
        try {
          decodeX509SvidResponse(Buffer.from(a));
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityError);
          expect((err as IdentityError).code).toBe("MESH_IDENTITY_WORKLOAD_API_INVALID");
          expect((err as Error).message).toMatch(/^X509SVIDResponse/);
        }
      }),
    );
  });

  test("a truncated field names the message it is in", () => {
    const good = serialize(response());
    expect(() => decodeX509SvidResponse(good.subarray(0, good.length - 3))).toThrow(
      /^X509SVIDResponse(\.svids\[0\])?: malformed protobuf \(a field of \d+ bytes runs past the end/,
    );
  });

  test("splitDer splits concatenated certificates and names the field on garbage", () => {
    const certs = [...ca.chain, ...anchor.bundle.certificates];
    const parts = splitDer(Buffer.concat(certs.map((c) => c.raw)), "f");
    expect(parts.map((p) => Buffer.compare(p, certs[parts.indexOf(p)]?.raw as Buffer))).toEqual(
      certs.map(() => 0),
    );
    expect(() => splitDer(Buffer.from([0x30, 0x82, 0x10]), "x.bundle")).toThrow(
      /^x\.bundle: truncated DER length/,
    );
    expect(() => splitDer(Buffer.from([0x02, 0x01, 0x00]), "x.bundle")).toThrow(
      /^x\.bundle: expected a DER SEQUENCE at byte 0, got tag 0x02/,
    );
  });
});

describe("SvidSource.fromWorkloadApi against a fake SPIRE agent", () => {
  test("the agent refuses calls without workload.spiffe.io metadata; the source sends it", async () => {
    const agent = await startAgent();
    agent.send(response());
    // A plain grpc-js client without the security header, as SPIRE sees a careless caller.
    const def = protoLoader.loadSync(
      join(dirname(fileURLToPath(import.meta.url)), "fixtures", "workload.proto"),
      { keepCase: true },
    );
    const Client = (
      grpc.loadPackageDefinition(def) as unknown as {
        SpiffeWorkloadAPI: grpc.ServiceClientConstructor;
      }
    ).SpiffeWorkloadAPI;
    const client = new Client(
      agent.address,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      FetchX509SVID(request: object): grpc.ClientReadableStream<unknown>;
    };
    cleanup.push(() => client.close());
    const call = client.FetchX509SVID({});
    const [err] = (await once(call, "error").catch((e) => [e])) as [grpc.ServiceError];
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(agent.denied).toBe(1);

    const s = source(agent);
    const { svid, bundle } = await s.ready();
    expect(svid.spiffeId.toString()).toBe(API);
    expect(bundle.pem).toBe(ca.bundle.pem);
    expect(agent.denied).toBe(1);
    expect(s.isReady()).toBe(true);
  });

  test("initial SVID, then rotation: the TLS server serves the new certificate, open connections stay", async () => {
    const agent = await startAgent();
    agent.send(response());
    const server = source(agent);
    const events: SvidEvent[] = [];
    const onSvid = (e: unknown) => events.push(e as SvidEvent);
    subscribe("mesh:identity:svid", onSvid);
    cleanup.push(() => unsubscribe("mesh:identity:svid", onSvid));
    const first = (await server.ready()).svid;
    const client = SvidSource.fromSvid(ca.issue(WEB), ca.bundle);

    const port = await mtlsServer(server);
    expect(await servedSerial(port, client)).toBe(first.serialNumber);

    // An open connection made before the rotation.
    const open = tlsConnect({
      ...clientTlsOptions(client, { expect: API }),
      host: "127.0.0.1",
      port,
    });
    await once(open, "secureConnect");
    cleanup.push(() => open.destroy());

    const updated = once(server, "update");
    const next = response();
    agent.send(next);
    const [snap] = await updated;
    expect(snap.svid.serialNumber).not.toBe(first.serialNumber);
    expect(server.svid.serialNumber).toBe(snap.svid.serialNumber);
    expect(await servedSerial(port, client)).toBe(snap.svid.serialNumber);
    expect(open.destroyed).toBe(false);
    expect((open as TLSSocket).getPeerX509Certificate()?.serialNumber).toBe(first.serialNumber);
    expect(events.filter((e) => e.spiffeId === API).map((e) => e.source)).toEqual([
      "workload-api",
      "workload-api",
    ]);
    expect(agent.calls).toBe(1); // one stream carried both
  });

  test("a bundle update from the stream is applied (new anchor trusted for new connections)", async () => {
    const agent = await startAgent();
    const svid = ca.issue(API);
    agent.send({ svids: [svidMessage(svid, ca.bundle)] });
    const s = source(agent);
    await s.ready();
    const other = createTrustAnchor({ trustDomain: TD });
    const both = new TrustBundle([...ca.bundle.certificates, ...other.bundle.certificates]);
    const updated = once(s, "update");
    // Same SVID, new bundle: SPIRE does this when a new root is published.
    agent.send({
      svids: [svidMessage(svid, both)],
      federated_bundles: {
        "partner.example": Buffer.concat(other.bundle.certificates.map((c) => c.raw)),
      },
    });
    const [snap] = await updated;
    expect(snap.svid.serialNumber).toBe(svid.serialNumber);
    expect(s.bundle.certificates.length).toBe(both.certificates.length);
    expect(s.bundle.has(other.bundle.certificates[0] as never)).toBe(true);
    expect([...s.federatedBundles.keys()]).toEqual(["partner.example"]);

    // A client with an SVID from the new root is now accepted by a server on this source.
    const port = await mtlsServer(s);
    const client = SvidSource.fromSvid(other.createAuthority().issue(WEB), both);
    expect(await servedSerial(port, client)).toBe(svid.serialNumber);
  });

  test("a dropped stream reconnects with backoff and the SVID keeps serving meanwhile", async () => {
    const agent = await startAgent();
    agent.send(response());
    const s = source(agent, { random: () => 0.5 });
    const first = (await s.ready()).svid;
    for (const how of ["fail", "end"] as const) {
      const failed = once(s, "refresh-failed");
      const reconnected = agent.nextStream();
      agent.drop(how);
      const [{ error, retryInMs }] = await failed;
      expect((error as IdentityError).code).toBe("MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE");
      expect(error.message).toMatch(
        how === "fail" ? /UNAVAILABLE \(14\): agent restarting/ : /the agent ended the stream/,
      );
      expect(retryInMs).toBe(5); // initial backoff, no jitter at random 0.5
      expect(s.nextRefreshAt).toBeGreaterThan(0);
      expect(s.svid.serialNumber).toBe(first.serialNumber);
      await reconnected;
    }
    // The second drop came after a good response on the reconnected stream: backoff reset.
    expect(agent.calls).toBe(3);
    const updated = once(s, "update");
    agent.send(response());
    const [snap] = await updated;
    expect(snap.svid.serialNumber).not.toBe(first.serialNumber);
    expect(s.nextRefreshAt).toBeUndefined();
  });

  test("an agent that is not there yet: retries, then the first SVID arrives", async () => {
    const dir = tempDir("wl-");
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "agent.sock");
    const s = SvidSource.fromWorkloadApi({ socket: path, retryInitialMs: 5, retryMaxMs: 20 });
    cleanup.push(() => s.close());
    const [{ error }] = await once(s, "refresh-failed");
    expect((error as IdentityError).code).toBe("MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE");
    expect(error.message).toContain(`Workload API at ${path}`);
    expect(s.current).toBeUndefined();
    const agent = await FakeSpireAgent.start(path);
    cleanup.push(() => agent.close());
    agent.send(response());
    expect((await s.ready()).svid.spiffeId.toString()).toBe(API);
  });

  test("bad data is rejected naming the field; the last good SVID stays and the stream stays open", async () => {
    const agent = await startAgent();
    agent.send(response());
    const s = source(agent);
    const good = (await s.ready()).svid;
    const bad = (mutate: (r: X509SvidResponse) => void) => {
      const r = response();
      mutate(r);
      return r;
    };
    const other = ca.issue(WEB);
    const cases: Array<[X509SvidResponse, RegExp]> = [
      [{ svids: [] }, /^X509SVIDResponse\.svids: expected at least one SVID, got none/],
      [
        bad((r) => {
          (r.svids[0] as { x509_svid_key: Buffer }).x509_svid_key = Buffer.from("not a key");
        }),
        /^X509SVIDResponse\.svids\[0\]\.x509_svid_key: expected a PKCS#8 DER private key/,
      ],
      [
        bad((r) => {
          (r.svids[0] as { x509_svid_key: Buffer }).x509_svid_key = other.privateKey.export({
            type: "pkcs8",
            format: "der",
          });
        }),
        /^X509SVIDResponse\.svids\[0\]\.x509_svid: the private key does not match the leaf certificate/,
      ],
      [
        bad((r) => {
          (r.svids[0] as { x509_svid: Buffer }).x509_svid = Buffer.from([0x30, 0x03, 1, 2, 3]);
        }),
        /^X509SVIDResponse\.svids\[0\]\.x509_svid: certificate #1 does not parse/,
      ],
      [
        bad((r) => {
          // A CA certificate is not an X.509-SVID leaf.
          (r.svids[0] as { x509_svid: Buffer }).x509_svid = (ca.chain[0] as { raw: Buffer }).raw;
        }),
        /^X509SVIDResponse\.svids\[0\]\.x509_svid: an X\.509-SVID leaf must not be a CA certificate/,
      ],
      [
        bad((r) => {
          (r.svids[0] as { spiffe_id: string }).spiffe_id = WEB;
        }),
        /^X509SVIDResponse\.svids\[0\]\.spiffe_id: expected the certificate's SPIFFE ID/,
      ],
      [
        bad((r) => {
          (r.svids[0] as { bundle: Buffer }).bundle = Buffer.alloc(0);
        }),
        /^X509SVIDResponse\.svids\[0\]\.bundle: expected DER certificates, got none/,
      ],
      [
        bad((r) => {
          // A leaf is not a trust anchor.
          (r.svids[0] as { bundle: Buffer }).bundle = other.certificate.raw;
        }),
        /^X509SVIDResponse\.svids\[0\]\.bundle: trust bundle: .* is not a CA certificate/,
      ],
    ];
    for (const [r, message] of cases) {
      const failed = once(s, "refresh-failed");
      agent.send(r);
      const [{ error, retryInMs }] = await failed;
      expect((error as IdentityError).code).toBe("MESH_IDENTITY_WORKLOAD_API_INVALID");
      expect(error.message).toMatch(message);
      expect(retryInMs).toBe(0);
      expect(s.svid.serialNumber).toBe(good.serialNumber);
    }
    const updated = once(s, "update");
    agent.send(response());
    await updated;
    expect(s.svid.serialNumber).not.toBe(good.serialNumber);
    expect(agent.calls).toBe(1);
  });

  test("picks the SVID for options.spiffeId among several; a missing one is an error", async () => {
    const agent = await startAgent();
    agent.send({
      svids: [svidMessage(ca.issue(WEB), ca.bundle), svidMessage(ca.issue(API), ca.bundle)],
    });
    const s = source(agent, { spiffeId: API });
    expect((await s.ready()).svid.spiffeId.toString()).toBe(API);
    const dflt = source(agent);
    expect((await dflt.ready()).svid.spiffeId.toString()).toBe(WEB);
    const failed = once(s, "refresh-failed");
    agent.send(response(WEB));
    const [{ error }] = await failed;
    expect(error.message).toBe(`X509SVIDResponse.svids: expected an SVID for ${API}, got ${WEB}`);
  });

  test("bad options name the option", () => {
    expect(() => SvidSource.fromWorkloadApi("tcp://127.0.0.1:8081")).toThrow(
      'options.socket: expected a Unix socket path or unix:// URL (tcp is not supported), got "tcp://127.0.0.1:8081"',
    );
    expect(() => SvidSource.fromWorkloadApi({ socket: "unix://relative" })).toThrow(
      'options.socket: expected unix:///absolute/path, got "unix://relative"',
    );
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    delete process.env.SPIFFE_ENDPOINT_SOCKET;
    try {
      expect(() => SvidSource.fromWorkloadApi()).toThrow(
        "SPIFFE_ENDPOINT_SOCKET (options.socket not given): expected a Unix socket path or unix:// URL, got undefined",
      );
    } finally {
      if (saved !== undefined) process.env.SPIFFE_ENDPOINT_SOCKET = saved;
    }
    expect(() => SvidSource.fromWorkloadApi({ socket: "/x", retryInitialMs: -1 })).toThrow(
      RangeError,
    );
  });
});

describe("the README's Workload API example", () => {
  test("runs against the fake agent: ready, then follows a rotation, then exits on SIGTERM", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("### SVIDs from SPIRE"));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    expect(code).toContain("SvidSource.fromWorkloadApi()");
    const dir = tempDir("wl-readme-");
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "workload.mjs");
    const dist = new URL("../dist/index.js", import.meta.url).href;
    writeFileSync(file, code.replace('"@mesh/tls-identity"', JSON.stringify(dist)));
    const agent = await startAgent();
    const first = ca.issue(API);
    agent.send({ svids: [svidMessage(first, ca.bundle)] });
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: agent.address, PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanup.push(() => child.kill());
    const lines = createInterface({ input: child.stdout });
    const seen: string[] = [];
    const waitFor = (re: RegExp) =>
      new Promise<string>((resolve) => {
        const hit = seen.find((l) => re.test(l));
        if (hit) return resolve(hit);
        const on = (l: string) => {
          if (!re.test(l)) return;
          lines.off("line", on);
          resolve(l);
        };
        lines.on("line", on);
      });
    lines.on("line", (l) => seen.push(l));
    expect(await waitFor(/^ready as/)).toBe(`ready as ${API}, trusting 1 anchor(s)`);
    expect(seen[0]).toMatch(new RegExp(`^SVID ${API} serial ${first.serialNumber}, expires `));
    const next = ca.issue(API);
    agent.send({ svids: [svidMessage(next, ca.bundle)] });
    await waitFor(new RegExp(`serial ${next.serialNumber}`));
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    expect((await exited)[0]).toBe(0);
  });
});

describe("the gRPC client's failure paths (a raw HTTP/2 server on a Unix socket)", () => {
  /** Serves each FetchX509SVID call with `respond`; returns the socket path. */
  async function rawAgent(respond: (stream: ServerHttp2Stream) => void): Promise<string> {
    const dir = tempDir("wl-raw-");
    const path = join(dir, "agent.sock");
    const server = createHttp2Server();
    const sessions = new Set<ServerHttp2Session>();
    server.on("session", (s) => {
      sessions.add(s);
      s.on("close", () => sessions.delete(s));
    });
    server.on("stream", (stream, headers) => {
      expect(headers[":path"]).toBe("/SpiffeWorkloadAPI/FetchX509SVID");
      expect(headers["workload.spiffe.io"]).toBe("true");
      expect(headers["content-type"]).toMatch(/^application\/grpc/);
      respond(stream);
    });
    server.listen(path);
    await once(server, "listening");
    cleanup.push(() => {
      for (const s of sessions) s.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return path;
  }

  const frame = (msg: Buffer, compressed = 0) => {
    const head = Buffer.alloc(5);
    head[0] = compressed;
    head.writeUInt32BE(msg.length, 1);
    return Buffer.concat([head, msg]);
  };

  async function firstError(path: string): Promise<IdentityError> {
    const s = SvidSource.fromWorkloadApi({ socket: path, retryInitialMs: 60_000 });
    cleanup.push(() => s.close());
    const [{ error }] = await once(s, "refresh-failed");
    return error as IdentityError;
  }

  test("a status in trailers-only (an unregistered workload: PERMISSION_DENIED) is named with the agent's message", async () => {
    const path = await rawAgent((stream) =>
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "7",
          "grpc-message": "no identity issued",
        },
        { endStream: true },
      ),
    );
    const err = await firstError(path);
    expect(err.code).toBe("MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE");
    expect(err.message).toBe(`Workload API at ${path}: PERMISSION_DENIED (7): no identity issued`);
  });

  test("not gRPC, compressed or oversized messages, a message split across DATA frames", async () => {
    const notGrpc = await rawAgent((stream) =>
      stream.respond({ ":status": 404 }, { endStream: true }),
    );
    expect((await firstError(notGrpc)).message).toBe(
      `Workload API at ${notGrpc}: HTTP status 404, expected 200 (not gRPC?)`,
    );
    const compressed = await rawAgent((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(frame(Buffer.from([1, 2, 3]), 1));
    });
    const c = await firstError(compressed);
    expect(c.code).toBe("MESH_IDENTITY_WORKLOAD_API_INVALID");
    expect(c.message).toBe(
      `Workload API at ${compressed}: a compressed message arrived, but none was asked for`,
    );
    const huge = await rawAgent((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      const head = Buffer.alloc(5);
      head.writeUInt32BE(64 * 1024 * 1024, 1);
      stream.write(head);
    });
    expect((await firstError(huge)).message).toBe(
      `Workload API at ${huge}: a message of 67108864 bytes exceeds the 4194304-byte limit`,
    );
    // A good response written a few bytes at a time still arrives whole.
    const good = serialize(response());
    const split = await rawAgent((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      const bytes = frame(good);
      for (let i = 0; i < bytes.length; i += 97) stream.write(bytes.subarray(i, i + 97));
    });
    const s = SvidSource.fromWorkloadApi({ socket: `unix:${split}` });
    cleanup.push(() => s.close());
    expect((await s.ready()).svid.spiffeId.toString()).toBe(API);
  });
});

describe("X509BundleSource.fromWorkloadApi (FetchX509Bundles)", () => {
  test("bundles by trust domain from the stream, updates, bad data refused, reconnect", async () => {
    const agent = await startAgent();
    const partner = createTrustAnchor({ trustDomain: "partner.example" });
    agent.send(response());
    const b = X509BundleSource.fromWorkloadApi({ socket: agent.address, retryInitialMs: 5 });
    cleanup.push(() => b.close());
    const first = await b.ready();
    expect([...first.keys()]).toEqual([TD]);
    expect(b.bundleFor(TD)?.pem).toBe(ca.bundle.pem);

    // The agent pushes a change on the open stream.
    const updated = once(b, "update");
    agent.send({
      ...response(),
      federated_bundles: {
        "partner.example": Buffer.concat(partner.bundle.certificates.map((c) => c.raw)),
      },
    });
    const [next] = await updated;
    expect([...next.keys()].sort()).toEqual(["partner.example", TD]);
    expect(b.bundleFor("partner.example")?.pem).toBe(partner.bundle.pem);

    // A bundle that is a leaf certificate is refused; the last good bundles stay.
    const failed = once(b, "refresh-failed");
    agent.send({
      svids: [{ ...svidMessage(ca.issue(API), ca.bundle), bundle: ca.issue(WEB).certificate.raw }],
    });
    const [{ error, retryInMs }] = await failed;
    expect((error as IdentityError).code).toBe("MESH_IDENTITY_WORKLOAD_API_INVALID");
    expect(retryInMs).toBe(0);
    expect(error.message).toMatch(
      /^X509BundlesResponse\.bundles\[prod\.example\]: trust bundle: .* is not a CA certificate/,
    );
    expect(b.bundleFor(TD)?.pem).toBe(ca.bundle.pem);

    // The stream drops: reconnect, and the agent's current (good) bundles arrive again.
    agent.send(response());
    await once(b, "update");
    const reconnected = agent.nextStream();
    const dropped = once(b, "refresh-failed");
    agent.drop("fail");
    expect(((await dropped)[0].error as IdentityError).code).toBe(
      "MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE",
    );
    await reconnected;
    const again = await once(b, "update");
    expect([...again[0].keys()]).toEqual([TD]);
  });

  test("decodes what protobufjs encodes for X509BundlesResponse", () => {
    const proto = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "workload.proto");
    const def = protoLoader.loadSync(proto, { keepCase: true, defaults: true });
    const method = (
      grpc.loadPackageDefinition(def) as unknown as {
        SpiffeWorkloadAPI: grpc.ServiceClientConstructor;
      }
    ).SpiffeWorkloadAPI.service.FetchX509Bundles as grpc.MethodDefinition<unknown, unknown>;
    const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(
        fc.record({
          crl: fc.array(bytes, { maxLength: 2 }),
          bundles: fc.dictionary(fc.string({ maxLength: 20 }), bytes, { maxKeys: 3 }),
        }),
        (r) => {
          const got = decodeX509BundlesResponse(method.responseSerialize(r));
          expect(got.crl).toEqual(r.crl);
          expect(Object.fromEntries(got.bundles)).toEqual(r.bundles);
        },
      ),
    );
  });
});
