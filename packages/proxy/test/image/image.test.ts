/**
 * The proxy's container image, really built and run: the single-file bundle, a FROM-scratch
 * base holding the repo's own node binary, the Dockerfile built on it with buildah, and the
 * image run (chroot isolation, host network) in front of a real backend on 127.0.0.1.
 * Everything lives in a private buildah store under a temp dir that is removed afterwards.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingPeer } from "../../../../scripts/peers.mjs";
import {
  Buildah,
  commandLine,
  descendants,
  type RunningContainerProcess,
  requireBuildah,
  uids,
} from "./buildah.js";

const execFileAsync = promisify(execFile);
const PACKAGE_DIR = fileURLToPath(new URL("../../", import.meta.url));
const BASE_TAG = "localhost/mesh-node-base:24";
const IMAGE_TAG = "localhost/mesh-proxy:test";
const NONROOT = 65532;
/** Upper bounds for the image: the base is ~132 MB (the node binary is ~127 MB of it). */
const MAX_IMAGE_BYTES = 160 * 1024 * 1024;
const MAX_PROXY_LAYER_BYTES = 4 * 1024 * 1024;

interface ImageConfig {
  User: string;
  Env: string[];
  Entrypoint: string[];
  Cmd: string[] | null;
  ExposedPorts: Record<string, unknown>;
  Healthcheck: { Test: string[] };
  StopSignal: string;
}

let work: string;
let buildah: Buildah;
let config: ImageConfig;
let layers: { size: number }[];
let baseLayers: { size: number }[];
let container: string;

async function inspectImage(
  tag: string,
): Promise<{ config: ImageConfig; layers: { size: number }[] }> {
  const info = JSON.parse(await buildah.run(["inspect", "--type", "image", tag])) as {
    Docker: { config: ImageConfig };
    Manifest: string;
  };
  const manifest = JSON.parse(info.Manifest) as { layers: { size: number }[] };
  return { config: info.Docker.config, layers: manifest.layers };
}

beforeAll(async () => {
  requireBuildah();
  work = mkdtempSync(join(tmpdir(), "mesh-proxy-image-"));
  buildah = new Buildah(work);

  // A build context holding what the package directory holds, so .dockerignore is exercised
  // (image/ has scripts and docs that must stay out) without touching the package's dist/.
  const context = join(work, "context");
  mkdirSync(context);
  for (const entry of ["Dockerfile", ".dockerignore", "LICENSE", "image"]) {
    cpSync(join(PACKAGE_DIR, entry), join(context, entry), { recursive: true });
  }
  await execFileAsync(process.execPath, [
    join(PACKAGE_DIR, "image", "bundle.mjs"),
    "--outdir",
    join(context, "dist", "bundle"),
  ]);

  const store = ["--root", join(work, "root"), "--runroot", join(work, "run")];
  await execFileAsync(process.execPath, [
    join(PACKAGE_DIR, "image", "build-local-base.mjs"),
    "--tag",
    BASE_TAG,
    ...store,
  ]);
  await buildah.run([
    "bud",
    "--pull=never",
    "--isolation",
    "chroot",
    "--format",
    "docker",
    "--build-arg",
    `BASE=${BASE_TAG}`,
    "--tag",
    IMAGE_TAG,
    context,
  ]);
  ({ config, layers } = await inspectImage(IMAGE_TAG));
  ({ layers: baseLayers } = await inspectImage(BASE_TAG));
  container = (await buildah.run(["from", "--pull=never", "--quiet", IMAGE_TAG])).trim();
}, 120_000);

afterAll(async () => {
  if (!work) return;
  try {
    await buildah.run(["rm", "--all"]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 60_000);

/** Runs a command in the image's container with no network. */
function runOffline(command: string[]): Promise<string> {
  return buildah.run(["run", "--network", "none", container, "--", ...command]);
}

describe.skipIf(missingPeer("buildah"))("mesh-proxy image", () => {
  it("is small, runs as a numeric non-root user and declares ports, health and signals", () => {
    const total = layers.reduce((sum, l) => sum + l.size, 0);
    const base = baseLayers.reduce((sum, l) => sum + l.size, 0);
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    console.log(
      `mesh-proxy image: ${mb(total)} uncompressed (base ${mb(base)}, proxy layers ${mb(total - base)})`,
    );
    expect(total).toBeLessThan(MAX_IMAGE_BYTES);
    expect(total - base).toBeLessThan(MAX_PROXY_LAYER_BYTES);

    expect(config.User).toBe(`${NONROOT}:${NONROOT}`);
    expect(Object.keys(config.ExposedPorts).sort()).toEqual(["4140/tcp", "4143/tcp", "4191/tcp"]);
    // The launcher's start-only V8 flag on the command line: node starts once, no re-execution.
    expect(config.Entrypoint).toEqual([
      "/nodejs/bin/node",
      "--single-threaded-gc",
      "/app/mesh-proxy.mjs",
    ]);
    expect(config.Healthcheck.Test).toEqual(["CMD", "/nodejs/bin/node", "/app/healthcheck.mjs"]);
    expect(config.StopSignal).toBe("SIGTERM");
    expect(config.Env).toContain("MESH_PROXY_CONFIG=/etc/mesh/proxy.yaml");
    const nodeOptions = config.Env.find((e) => e.startsWith("NODE_OPTIONS="));
    expect(nodeOptions).toMatch(/--max-old-space-size=\d+/);
    expect(nodeOptions).toMatch(/--max-semi-space-size=16\b/);
  });

  it("holds only the bundle, its health probe and a default config that validates", async () => {
    const listing = await runOffline([
      "/nodejs/bin/node",
      "-e",
      "const fs = require('node:fs'); console.log(JSON.stringify({ app: fs.readdirSync('/app').sort(), uid: process.getuid() }))",
    ]);
    expect(JSON.parse(listing)).toEqual({
      app: ["healthcheck.mjs", "mesh-identity.mjs", "mesh-proxy.mjs"],
      uid: NONROOT,
    });
    // `check` takes the default config from MESH_PROXY_CONFIG, like the proxy itself does.
    const check = await runOffline([...config.Entrypoint, "check"]);
    expect(check.trim()).toBe("/etc/mesh/proxy.yaml: ok");
    // The issuer `mesh-proxy install` deploys runs from the same image.
    const identity = await runOffline([
      "/nodejs/bin/node",
      "/app/mesh-identity.mjs",
      "serve",
      "--help",
    ]);
    expect(identity).toContain("--kubernetes");
  });

  describe("running the image with a mounted config", () => {
    let backend: http.Server;
    let held: http.ServerResponse | undefined;
    let onHeld: (() => void) | undefined;
    let proxy: RunningContainerProcess;
    let pid: number | undefined;
    let admin: string;
    let outbound: string;
    let warmup: Record<string, unknown>;

    beforeAll(async () => {
      backend = http.createServer((req, res) => {
        if (req.url === "/slow") {
          held = res;
          onHeld?.();
          return;
        }
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ host: req.headers.host, path: req.url }));
      });
      await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
      const port = (backend.address() as AddressInfo).port;

      const configDir = join(work, "config");
      mkdirSync(configDir);
      writeFileSync(
        join(configDir, "proxy.yaml"),
        [
          "admin: { listen: 127.0.0.1:0 }",
          "shutdown: { gracePeriod: 30s }",
          "outbound:",
          "  listen: 127.0.0.1:0",
          "  services:",
          "    - name: books",
          "      authorities: [books]",
          `      discovery: { static: ["127.0.0.1:${port}"] }`,
        ].join("\n"),
      );
      // Exactly the image's ENTRYPOINT + CMD, the config mounted where a ConfigMap would be.
      proxy = buildah.spawn([
        "run",
        "--network",
        "host",
        "--volume",
        `${configDir}:/etc/mesh:ro`,
        container,
        "--",
        ...config.Entrypoint,
        ...(config.Cmd ?? []),
      ]);
      const listening = await proxy.waitForLog((l) => l.msg === "listening");
      admin = String(listening.admin);
      outbound = String(listening.outbound);
      // Ready after the warm-up (its far side is a child process started from the bundle).
      warmup = await proxy.waitForLog((l) => String(l.msg).startsWith("warm"));
      const node = descendants(proxy.child.pid!).find((p) => {
        try {
          return commandLine(p).join(" ") === config.Entrypoint.join(" ");
        } catch {
          return false;
        }
      });
      if (node === undefined) throw new Error("expected the proxy's node process, found none");
      pid = node;
    }, 60_000);

    afterAll(async () => {
      held?.end();
      if (proxy && proxy.child.exitCode === null) {
        // Only reached when a test failed: stop the proxy itself (buildah run then exits),
        // or let buildah run tear its container process down.
        if (pid !== undefined) process.kill(pid, "SIGKILL");
        else proxy.child.kill("SIGTERM");
        await proxy.exited;
      }
      backend?.closeAllConnections();
      await new Promise((resolve) => backend?.close(resolve));
    });

    it("runs the proxy as uid 65532, not root", () => {
      expect(uids(pid!)).toEqual([NONROOT, NONROOT, NONROOT, NONROOT]);
    });

    it("proxies a request from the outbound listener to the backend", async () => {
      const res = await request(outbound, "/books/42", { host: "books" });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ host: "books", path: "/books/42" });
    });

    it("warms its request path before /ready, from the single-file bundle", () => {
      // Done, or cut by warmup.timeout on a slow machine: either way requests went through.
      expect(String(warmup.msg)).toMatch(
        /^(warmed up; ready|warm-up stopped at warmup.timeout; ready)$/,
      );
      expect(Number(warmup.outbound)).toBeGreaterThan(0);
      expect(warmup.err).toBeUndefined();
    });

    it("answers /live and /ready, and the image's HEALTHCHECK passes", async () => {
      expect((await request(admin, "/live")).status).toBe(200);
      expect((await request(admin, "/ready")).status).toBe(200);
      // The health probe finds the admin address through the proxy's own env override.
      await buildah.run([
        "run",
        "--network",
        "host",
        "--env",
        `MESH_PROXY_ADMIN__LISTEN=${admin}`,
        container,
        "--",
        ...config.Healthcheck.Test.slice(1),
      ]);
    });

    it("on SIGTERM lets an in-flight request finish, then exits 0", async () => {
      const backendHasIt = new Promise<void>((resolve) => {
        onHeld = resolve;
      });
      const inFlight = request(outbound, "/slow", { host: "books" });
      await backendHasIt;
      process.kill(pid!, "SIGTERM");
      await proxy.waitForLog((l) => l.msg === "shutting down");
      held?.end("done");
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.body).toBe("done");
      expect(await proxy.exited).toBe(0);
      expect(proxy.logs.some((l) => l.msg === "shutdown complete")).toBe(true);

      // With the proxy gone the health probe fails, so an orchestrator would notice.
      await expect(
        buildah.run([
          "run",
          "--network",
          "host",
          "--env",
          `MESH_PROXY_ADMIN__LISTEN=${admin}`,
          container,
          "--",
          ...config.Healthcheck.Test.slice(1),
        ]),
      ).rejects.toThrow(/healthcheck: http:\/\/127\.0\.0\.1:\d+\/live: connect ECONNREFUSED/);
    });
  });
});

/** One HTTP/1.1 request on its own connection; resolves with status and body. */
function request(
  address: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const at = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: address.slice(0, at),
        port: Number(address.slice(at + 1)),
        path,
        headers,
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}
