/**
 * The README commands work as written. Every `mesh-proxy` / `mesh-identity` line in a shell
 * block of README.md, the package READMEs and the example READMEs is checked from where its
 * README says to run it: the root and example READMEs at the repository root (the bins are
 * linked there), the package READMEs in a project that installed the packed packages
 * (consumer/project.ts). Lines that finish on their own offline (`--help`, `check`, `schema`,
 * `ca create`, `issue`, `inspect`, `echo … > file`) are run through `sh` and must exit 0;
 * lines that start a server or need one (`--config` runs, `serve`, `stat --admin`, `check
 * --kubernetes`, `install`/`inject` piped to kubectl) have every
 * flag they use checked against the command's own `--help`.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ROOT, userEnv } from "./consumer/project.js";

const execFileAsync = promisify(execFile);

interface Block {
  lang: string;
  lines: string[];
}

/** Fenced code blocks of a Markdown file; shell lines joined across `\` continuations. */
function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  let current: Block | undefined;
  for (const line of markdown.split("\n")) {
    const fence = /^```(\w*)/.exec(line);
    if (fence && !current) current = { lang: fence[1] ?? "", lines: [] };
    else if (fence && current) {
      out.push(current);
      current = undefined;
    } else if (current) {
      const last = current.lines.length - 1;
      if (last >= 0 && current.lines[last]!.endsWith("\\"))
        current.lines[last] = `${current.lines[last]!.slice(0, -1)} ${line.trim()}`;
      else current.lines.push(line);
    }
  }
  return out;
}

/** A shell line without its trailing `# comment` (comments here follow two spaces). */
const uncomment = (line: string) => line.replace(/\s{2,}#.*$/, "").trim();

/** Files a README shows with a `# <name>` first line (e.g. `# proxy.yaml`). */
function shownFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const b of blocks(markdown)) {
    const name = /^# ([\w.-]+\.(?:ya?ml|json))$/.exec(b.lines[0] ?? "")?.[1];
    if (name) files.set(name, `${b.lines.slice(1).join("\n")}\n`);
  }
  return files;
}

const BIN = /^(?:npx )?(mesh-proxy|mesh-identity)\b/;
/** Subcommands that finish on their own without a network peer. */
const OFFLINE =
  /^npx (?:mesh-proxy (?:check(?! --kubernetes)|schema)\b|mesh-identity (?:ca create|issue|inspect)\b)|--help\b/;

interface ReadmeCommands {
  readme: string;
  where: "root" | "consumer";
  commands: string[];
}

function readmes(): ReadmeCommands[] {
  const found: ReadmeCommands[] = [];
  const add = (readme: string, where: ReadmeCommands["where"]) => {
    const commands = blocks(readFileSync(join(ROOT, readme), "utf8"))
      .filter((b) => ["sh", "bash", "shell", "console"].includes(b.lang))
      .flatMap((b) => b.lines.map(uncomment))
      .filter((line) => BIN.test(line) || /^echo .*> [\w.-]+$/.test(line));
    if (commands.some((c) => BIN.test(c))) found.push({ readme, where, commands });
  };
  add("README.md", "root");
  for (const d of readdirSync(join(ROOT, "examples"))) add(`examples/${d}/README.md`, "root");
  add("bench/README.md", "root");
  for (const d of readdirSync(join(ROOT, "packages"))) add(`packages/${d}/README.md`, "consumer");
  return found;
}

const files = shownFiles(readFileSync(join(ROOT, "packages/proxy/README.md"), "utf8"));
const all = readmes();
const cleanup: string[] = [];
afterAll(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

/** A working directory where the README says to run: inside the repository, or the consumer project. */
function workDir(where: ReadmeCommands["where"]): string {
  const parent =
    where === "root" ? join(ROOT, "node_modules", ".cache") : join(inject("consumerDir"), "work");
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, "mesh-readme-"));
  cleanup.push(dir);
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return dir;
}

async function sh(line: string, cwd: string, where: ReadmeCommands["where"]) {
  // At the root, npm's own scripts environment (the repository's Node 24 and bins) as a
  // developer's `npx` there gets it; in the consumer project, a user's plain shell.
  const env = where === "root" ? { ...process.env, npm_config_yes: "false" } : userEnv();
  try {
    const { stdout } = await execFileAsync("sh", ["-c", line], { cwd, env, timeout: 20_000 });
    return stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    throw new Error(
      `\`${line}\` (in ${cwd}) exited ${err.code}:\n${err.stderr ?? ""}${err.stdout ?? ""}`,
    );
  }
}

const helps = new Map<string, Promise<string>>();
/** `--help` output, asked once per command and place. */
function helpOf(line: string, cwd: string, where: ReadmeCommands["where"]): Promise<string> {
  const key = `${where} ${line}`;
  if (!helps.has(key)) helps.set(key, sh(line, cwd, where));
  return helps.get(key)!;
}

describe("README commands", () => {
  it("finds the commands this test is meant to keep working", () => {
    const lines = all.flatMap((r) => r.commands);
    for (const expected of [
      "npx mesh-proxy check --config proxy.yaml",
      "npx mesh-proxy --help",
      "npx mesh-identity ca create --trust-domain example.org --out ./ca",
    ])
      expect(lines).toContain(expected);
    expect(all.map((r) => r.readme)).toEqual(
      expect.arrayContaining(["README.md", "packages/proxy/README.md", "examples/demo/README.md"]),
    );
  });

  it("writes bins as `npx …`: a bare mesh-proxy is not on PATH after `npm install`", () => {
    const bare = all.flatMap((r) =>
      r.commands.filter((c) => /^mesh-/.test(c)).map((c) => `${r.readme}: ${c}`),
    );
    expect(bare).toEqual([]);
  });

  it.concurrent.each(all.map((r) => [r.readme, r] as const))("%s", async (_readme, r) => {
    const cwd = workDir(r.where);
    for (const line of r.commands) {
      if (OFFLINE.test(line) || line.startsWith("echo ")) {
        await sh(line, cwd, r.where);
        continue;
      }
      // Needs a running proxy or starts a server: every flag it uses is in its --help.
      const [, bin, sub] = /^npx (mesh-proxy|mesh-identity)(?: ([a-z]+))?/.exec(line) ?? [];
      expect(bin, line).toBeDefined();
      const help = await helpOf(`npx ${bin} ${sub ?? ""} --help`, cwd, r.where);
      for (const flag of line.match(/(?<=\s)--[a-z][a-z-]*/g) ?? [])
        expect(help, `${r.readme}: \`${line}\` uses ${flag}`).toContain(flag);
    }
  });
});
