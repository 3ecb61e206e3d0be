import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ConnectionOptions,
  connect,
  createServer,
  type Server,
  type TLSSocket,
} from "node:tls";
import { afterEach, describe, expect, test } from "vitest";
import { sClient } from "../../../test/openssl.js";
import {
  clientTlsOptions,
  keyExchangeGroups,
  MESH_KEY_EXCHANGE_GROUPS,
  matchTrustDomain,
  negotiatedGroup,
  peerSpiffeId,
  secureServer,
  serverTlsOptions,
  undiciConnector,
} from "../src/index.js";
import { listen } from "./helpers.js";
import { bundle, CLIENT_ID, client, SERVER_ID, server } from "./mtls-fixtures.js";

/** OpenSSL 3.5 (Node 24) is the first with ML-KEM; the project runs on Node 24. */
const [major = 0, minor = 0] = (process.versions.openssl ?? "0.0").split(".").map(Number);
const RUNTIME_HAS_MLKEM = major > 3 || (major === 3 && minor >= 5);

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function startServer(options: { ecdhCurve?: string } = {}): Promise<number> {
  const srv: Server = createServer({ ...serverTlsOptions(server), ...options }, (s: TLSSocket) =>
    s.end(`hello ${peerSpiffeId(s)}`),
  );
  secureServer(srv, server, { authorize: matchTrustDomain("prod.example") });
  const port = await listen(srv);
  closers.push(() => srv.close());
  return port;
}

/** Connects, reads the greeting, and reports the group the client negotiated. */
function handshake(
  port: number,
  extra: ConnectionOptions = {},
): Promise<{ data: string; group: string | undefined }> {
  return new Promise((resolve, reject) => {
    let data = "";
    let group: string | undefined;
    const s = connect(
      { host: "127.0.0.1", port, ...clientTlsOptions(client, { expect: SERVER_ID }), ...extra },
      () => {
        group = negotiatedGroup(s);
      },
    );
    s.setEncoding("utf8");
    s.on("data", (d) => {
      data += d;
    });
    s.on("error", reject);
    s.on("end", () => resolve({ data, group }));
  });
}

describe("post-quantum key exchange between mesh peers", () => {
  test("the default group list prefers X25519MLKEM768 where OpenSSL knows it, classical groups always follow", () => {
    expect(MESH_KEY_EXCHANGE_GROUPS).toEqual(["X25519MLKEM768", "X25519", "P-256"]);
    const groups = keyExchangeGroups();
    expect(groups).toBe(RUNTIME_HAS_MLKEM ? "X25519MLKEM768:X25519:P-256" : "X25519:P-256");
    // An unknown group is dropped rather than failing the whole list (what OpenSSL 3.0 on
    // Node 22 does with X25519MLKEM768).
    expect(keyExchangeGroups(["NoSuchGroup", "X25519"])).toBe("X25519");
    expect(() => keyExchangeGroups(["NoSuchGroup"])).toThrow(
      'groups: expected at least one key-exchange group this runtime\'s OpenSSL supports, got ["NoSuchGroup"]',
    );
  });

  test("two mesh endpoints negotiate X25519MLKEM768 (node:tls server and client with the library's options)", async () => {
    const port = await startServer();
    const r = await handshake(port);
    expect(r.data).toBe(`hello ${CLIENT_ID}`);
    expect(r.group).toBe(RUNTIME_HAS_MLKEM ? "X25519MLKEM768" : "X25519");
  });

  test("the undici connector negotiates the hybrid group too", async () => {
    const port = await startServer();
    const connector = undiciConnector(client, { expect: SERVER_ID });
    const socket = await new Promise<TLSSocket>((resolve, reject) =>
      connector({ hostname: "127.0.0.1", port, protocol: "https:" }, (err, s) =>
        err ? reject(err) : resolve(s as TLSSocket),
      ),
    );
    closers.push(() => socket.destroy());
    expect(negotiatedGroup(socket)).toBe(RUNTIME_HAS_MLKEM ? "X25519MLKEM768" : "X25519");
  });

  test("a classical-only client still connects to a mesh server (X25519)", async () => {
    const port = await startServer();
    const r = await handshake(port, { ecdhCurve: "X25519", secureContext: undefined, ...pem() });
    expect(r.data).toBe(`hello ${CLIENT_ID}`);
    expect(r.group).toBe("X25519");
  });

  test("a mesh client still connects to a classical-only server (P-256)", async () => {
    const port = await startServer({ ecdhCurve: "P-256" });
    const r = await handshake(port);
    expect(r.data).toBe(`hello ${CLIENT_ID}`);
    // OpenSSL names P-256 by its curve name.
    expect(r.group).toBe("prime256v1");
  });

  test("openssl s_client offering only X25519 completes the handshake with a mesh server", async ({
    skip,
  }) => {
    const port = await startServer();
    const dir = mkdtempSync(join(tmpdir(), "kex-"));
    writeFileSync(join(dir, "c.pem"), client.svid.chainPem);
    writeFileSync(
      join(dir, "c.key"),
      client.svid.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    );
    const out = await sClient([
      "-connect",
      `127.0.0.1:${port}`,
      "-tls1_3",
      "-groups",
      "X25519",
      "-cert",
      join(dir, "c.pem"),
      "-cert_chain",
      join(dir, "c.pem"),
      "-key",
      join(dir, "c.key"),
    ]);
    if (out === undefined) return skip("needs the openssl command");
    expect(out).toMatch(/Server Temp Key: X25519/);
    expect(out).toContain(`hello ${CLIENT_ID}`);
  });
});

/** A client configured from PEM instead of the library's secure context. */
function pem() {
  return {
    cert: client.svid.chainPem,
    key: client.svid.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    ca: bundle.pem,
  };
}
