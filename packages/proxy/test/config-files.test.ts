import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createTrustAnchor } from "@mesh/tls-identity";
import { describe, expect, test } from "vitest";
import { validateConfig } from "../src/index.js";
import { type ProxyProcess, runCli, startProxy, tempDir, writeConfig } from "./helpers.js";

/** Issue 16 items 2 and 3: configs that cannot lie. */

const TD = "example.org";
const WEB = "spiffe://example.org/ns/default/sa/web";
const INBOUND = { listen: "127.0.0.1:0", app: "127.0.0.1:1" };

/** Real identity files (SVID for `id`, its key, the trust bundle) in a fresh directory. */
function identityFiles(id = WEB): { dir: string; cert: string; key: string; bundle: string } {
  const dir = tempDir();
  const anchor = createTrustAnchor({ trustDomain: TD });
  const svid = anchor.createAuthority().issue(id);
  const files = {
    dir,
    cert: join(dir, "svid.pem"),
    key: join(dir, "key.pem"),
    bundle: join(dir, "bundle.pem"),
  };
  writeFileSync(files.cert, svid.chainPem);
  writeFileSync(files.key, svid.privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  writeFileSync(files.bundle, anchor.bundle.pem);
  return files;
}

/** A config file with an inbound and `identity.files` as given. */
const filesConfig = (files: { cert: string; key: string; bundle: string }, dir = tempDir()) =>
  writeConfig(dir, { identity: { trustDomain: TD, id: WEB, files }, inbound: INBOUND });

const check = (file: string, env: NodeJS.ProcessEnv = {}) =>
  runCli(["check", "--config", file], env);

describe("an empty or all-sections-missing config is refused", () => {
  const NOTHING = "expected inbound and/or outbound (without either the proxy proxies nothing)";

  test("by check: an empty file, an empty mapping, only admin and log", async () => {
    for (const [text, got] of [
      ["", "an empty config"],
      ["# nothing yet\n", "an empty config"],
      ["{}\n", "an empty config"],
      ["admin: { listen: 127.0.0.1:0 }\nlog: { level: debug }\n", "only admin, log"],
    ] as const) {
      const file = writeConfig(tempDir(), text);
      const r = await check(file);
      expect(r.code, text).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(`${file}: 1 problem\n  ${NOTHING}, got ${got}\n`);
    }
    expect(validateConfig({}).ok).toBe(false);
  });

  test("the environment can still supply the section an empty file lacks", async () => {
    const file = writeConfig(tempDir(), "");
    const r = await check(file, { MESH_PROXY_INBOUND__APP: "127.0.0.1:8080" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test("at start: the proxy exits 1 with the same message instead of serving only /ready", async () => {
    const file = writeConfig(tempDir(), "admin: { listen: 127.0.0.1:0 }\n");
    let proxy: ProxyProcess | undefined;
    const started = startProxy(file).then((p) => {
      proxy = p;
      return p;
    });
    await expect(started).rejects.toThrow(`${NOTHING}, got only admin`);
    await proxy?.stop();
  });
});

describe("check verifies every file the config names", () => {
  test("valid identity files, issuer token and CA, and discovery file: ok", async () => {
    const id = identityFiles();
    const dir = tempDir();
    writeFileSync(join(dir, "token"), "secret\n");
    writeFileSync(join(dir, "endpoints.yaml"), "- 127.0.0.1:9001\n- { address: 127.0.0.1:9002 }\n");
    const files = filesConfig({ cert: id.cert, key: id.key, bundle: id.bundle }, dir);
    expect(await check(files)).toMatchObject({ code: 0, stdout: `${files}: ok\n` });
    const issuer = writeConfig(
      dir,
      {
        identity: {
          trustDomain: TD,
          id: WEB,
          // Relative paths resolve against the config file's directory, as at start.
          issuer: { url: "https://127.0.0.1:1", tokenFile: "token", bundleFile: id.bundle },
        },
        outbound: {
          services: [{ name: "books", discovery: { file: { path: join(dir, "endpoints.yaml") } } }],
        },
      },
      "issuer.yaml",
    );
    expect(await check(issuer)).toMatchObject({ code: 0, stdout: `${issuer}: ok\n` });
  });

  test("missing identity files: each named with its config field and path", async () => {
    const dir = tempDir();
    const file = writeConfig(dir, {
      identity: {
        trustDomain: TD,
        id: WEB,
        files: { cert: "certs/svid.pem", key: "certs/key.pem", bundle: "certs/bundle.pem" },
      },
      inbound: INBOUND,
    });
    const r = await check(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(`${file}: 3 problems`);
    for (const [field, name] of [
      ["cert", "svid.pem"],
      ["key", "key.pem"],
      ["bundle", "bundle.pem"],
    ] as const)
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^  identity\\.files\\.${field}: cannot read ${join(dir, "certs", name)}: ENOENT`,
          ),
        ),
      );
  });

  test("identity files that do not parse, or are for another identity", async () => {
    const id = identityFiles();
    const other = identityFiles("spiffe://example.org/ns/default/sa/books");
    writeFileSync(id.bundle, "not a certificate\n");
    const file = filesConfig({ cert: other.cert, key: other.key, bundle: id.bundle });
    const r = await check(file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `identity.files.cert: expected an X.509-SVID certificate chain (PEM) in ${other.cert}: it is for spiffe://example.org/ns/default/sa/books, but identity.id is ${WEB}`,
    );
    expect(r.stderr).toContain(
      `identity.files.bundle: expected a PEM trust bundle in ${id.bundle}:`,
    );
    // A key that does not belong to the certificate.
    const mismatched = filesConfig({ cert: id.cert, key: other.key, bundle: other.bundle });
    const m = await check(mismatched);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(
      `identity.files.cert: expected an X.509-SVID certificate chain (PEM) in ${id.cert}:`,
    );
  });

  test("the Workload API socket: missing or not a socket is named; a listening socket passes", async () => {
    const dir = tempDir();
    const config = (socket: string, name: string) =>
      writeConfig(
        dir,
        { identity: { trustDomain: TD, id: WEB, workloadApi: { socket } }, inbound: INBOUND },
        name,
      );
    const missing = await check(config("agent.sock", "missing.yaml"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      new RegExp(`identity\\.workloadApi\\.socket: cannot find ${join(dir, "agent.sock")}: ENOENT`),
    );
    writeFileSync(join(dir, "plain"), "");
    const plain = await check(config("unix:plain", "plain.yaml"));
    expect(plain.stderr).toContain(
      `identity.workloadApi.socket: expected the Workload API's Unix socket at ${join(dir, "plain")}, got a file that is not a socket`,
    );
    const server = createServer();
    server.listen(join(dir, "agent.sock"));
    await once(server, "listening");
    try {
      const ok = config(`unix://${join(dir, "agent.sock")}`, "ok.yaml");
      expect(await check(ok)).toMatchObject({ code: 0, stdout: `${ok}: ok\n` });
    } finally {
      server.close();
    }
  });

  test("issuer token and CA files, discovery files: missing, empty or invalid", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "token"), "  \n");
    writeFileSync(
      join(dir, "ca.pem"),
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    writeFileSync(join(dir, "bad.json"), '{ "endpoints": [ { "address": "nowhere" } ] }');
    const file = writeConfig(dir, {
      identity: {
        trustDomain: TD,
        id: WEB,
        issuer: { url: "https://127.0.0.1:1", tokenFile: "token", bundleFile: "ca.pem" },
      },
      outbound: {
        services: [
          { name: "a", discovery: { file: { path: join(dir, "missing.yaml") } } },
          {
            name: "b",
            backends: [{ name: "b1", discovery: { file: { path: join(dir, "bad.json") } } }],
          },
        ],
      },
    });
    const r = await check(file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}: 4 problems`);
    expect(r.stderr).toContain(
      `identity.issuer.tokenFile: expected a bearer token in ${join(dir, "token")}, got an empty file`,
    );
    expect(r.stderr).toContain(
      `identity.issuer.bundleFile: expected PEM CA certificates in ${join(dir, "ca.pem")}:`,
    );
    expect(r.stderr).toMatch(
      new RegExp(
        `outbound\\.services\\[0\\]\\.discovery\\.file\\.path: cannot read ${join(dir, "missing.yaml")}: ENOENT`,
      ),
    );
    expect(r.stderr).toContain(
      `outbound.services[1].backends[0].discovery.file.path: expected a JSON or YAML list of endpoints in ${join(dir, "bad.json")}:`,
    );
    expect(r.stderr).toContain("endpoints[0].address");
  });
});

describe("log lines tell the truth about the identity", () => {
  test("with no certificate ever loaded, the proxy does not claim a current one keeps serving", async () => {
    const dir = tempDir();
    const file = writeConfig(dir, {
      admin: { listen: "127.0.0.1:0" },
      identity: {
        trustDomain: TD,
        id: WEB,
        files: { cert: "svid.pem", key: "key.pem", bundle: "bundle.pem" },
        renewal: { retryInitial: "100ms", retryMax: "200ms" },
      },
      inbound: INBOUND,
    });
    const proxy = await startProxy(file);
    try {
      const line = await proxy.waitForLog((l) => l.level === "warn" && typeof l.err === "string");
      expect(line.msg).toBe(
        "identity certificate not loaded yet; not ready (no mTLS) until one is",
      );
      expect(line.err).toContain(join(dir, "svid.pem"));
      const ready = await fetch(`http://${proxy.addresses.admin}/ready`);
      expect(ready.status).toBe(503);
      await ready.arrayBuffer();
      expect(proxy.logs.map((l) => l.msg)).not.toContain(
        "identity certificate renewal failed; the current certificate keeps serving",
      );
      // Once the files appear it loads them, and only then is there a current certificate.
      const id = identityFiles();
      for (const name of ["cert", "key", "bundle"] as const)
        writeFileSync(join(dir, `${name === "cert" ? "svid" : name}.pem`), readFileSync(id[name]));
      await proxy.waitForLog((l) => l.msg === "identity certificate in use");
    } finally {
      await proxy.stop();
    }
  });
});
