/**
 * vitest globalSetup: packs every publishable package (`npm pack`) and installs the tarballs
 * into a new project outside the workspace (its own package.json and node_modules), as
 * `npm install @mesh/…` would. The tests get its directory as `consumerDir`.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";

const execFileAsync = promisify(execFile);
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The environment of a user's shell: Node 24 first on PATH, nothing from the workspace. */
export function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_|^INIT_CWD$/i.test(k)) env[k] = v;
  }
  const path = (process.env.PATH ?? "").split(":").filter((d) => d && !d.startsWith(ROOT));
  env.PATH = [dirname(process.execPath), ...path].join(":");
  env.npm_config_yes = "false"; // npx must find the installed bin, never fetch a package
  env.npm_config_update_notifier = "false";
  env.npm_config_fund = "false";
  env.npm_config_audit = "false";
  return env;
}

/** Publishable packages: name and directory. */
export function publishable(): Array<{ name: string; dir: string }> {
  return readdirSync(join(ROOT, "packages"))
    .map((d) => join(ROOT, "packages", d))
    .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }))
    .filter(({ pkg }) => !pkg.private)
    .map(({ dir, pkg }) => ({ name: pkg.name as string, dir }));
}

export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), "mesh-consumer-"));
  const env = userEnv();
  const packed = await Promise.all(
    publishable().map(async ({ name, dir: pkgDir }) => {
      const { stdout } = await execFileAsync(
        "npm",
        ["pack", "--json", "--ignore-scripts", "--pack-destination", dir],
        { cwd: pkgDir, env },
      );
      const [report] = JSON.parse(stdout) as Array<{ filename: string }>;
      return [name, `file:./${report!.filename}`] as const;
    }),
  );
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify(
      {
        name: "mesh-consumer",
        private: true,
        type: "module",
        dependencies: {
          ...Object.fromEntries(packed),
          "@opentelemetry/api": "^1.9.0",
          undici: "^8.13.1",
          undici7: "npm:undici@^7.30.2",
        },
      },
      null,
      2,
    ),
  );
  cpSync(join(ROOT, "test", "consumer", "fixtures"), dir, { recursive: true });
  try {
    await execFileAsync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], {
      cwd: dir,
      env,
    });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    throw new Error(
      `npm install of the packed tarballs in ${dir} failed:\n${err.stderr ?? ""}${err.stdout ?? ""}`,
    );
  }
  project.provide("consumerDir", dir);
  return () => rmSync(dir, { recursive: true, force: true });
}

declare module "vitest" {
  export interface ProvidedContext {
    consumerDir: string;
  }
}
