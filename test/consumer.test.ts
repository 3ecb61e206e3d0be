/**
 * The packages as `npm install @mesh/…` delivers them: packed, installed into a project
 * outside the workspace (consumer/project.ts), and each library README's main example run
 * there (fixtures/*.mjs) on Node's global fetch and undici 8 against real servers, plus the
 * bins through npx. Fails if a package's exports, files, bin or dependencies break.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { userEnv } from "./consumer/project.js";

const execFileAsync = promisify(execFile);
const dir = inject("consumerDir");

async function run(cmd: string, args: string[]) {
  try {
    return await execFileAsync(cmd, args, { cwd: dir, env: userEnv(), timeout: 25_000 });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} in ${dir} failed: ${err.message}\n${err.stdout}`);
  }
}

describe("packed packages in a project outside the workspace", () => {
  it.each(["core", "retry", "balancer", "metrics", "tls-identity", "limit", "proxy"])(
    "@mesh/%s: the README example runs",
    async (name) => {
      const { stdout } = await run(process.execPath, [`${name}.mjs`]);
      expect(stdout).toContain(`${name} ok`);
    },
  );

  it("runs on the repository's Node 24", async () => {
    expect((await run("node", ["-p", "process.versions.node"])).stdout).toMatch(/^24\./);
  });

  it("npx mesh-proxy --help and npx mesh-identity --help run the installed bins", async () => {
    expect((await run("npx", ["mesh-proxy", "--help"])).stdout).toContain(
      "mesh-proxy: the @mesh sidecar proxy",
    );
    expect((await run("npx", ["mesh-identity", "--help"])).stdout).toContain(
      "Usage: mesh-identity <command>",
    );
  });
});
