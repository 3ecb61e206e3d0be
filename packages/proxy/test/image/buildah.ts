import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/**
 * Throws unless buildah is on PATH. The image test must fail (not skip) without it: CI
 * installs it (Debian package `buildah`).
 */
export function requireBuildah(): string {
  const probe = spawnSync("buildah", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      "buildah: expected it on PATH to build and run the proxy image, got " +
        `${probe.error ? (probe.error as NodeJS.ErrnoException).code : `exit ${probe.status}`}. ` +
        "Install it (Debian/Ubuntu: apt-get install -y buildah); .ci/run installs it in CI.",
    );
  }
  return probe.stdout.trim();
}

/**
 * buildah with a private image store under `dir` (vfs driver, chroot isolation): nothing
 * touches the machine's own store, no container engine or registry is needed, and removing
 * `dir` removes every image and container.
 */
export class Buildah {
  readonly globalArgs: string[];
  readonly env: NodeJS.ProcessEnv;

  constructor(dir: string) {
    this.globalArgs = [
      "--root",
      join(dir, "root"),
      "--runroot",
      join(dir, "run"),
      "--storage-driver",
      "vfs",
    ];
    this.env = { ...process.env, BUILDAH_ISOLATION: "chroot", STORAGE_DRIVER: "vfs" };
  }

  /** Runs `buildah <args>` to completion and returns its stdout. */
  async run(args: string[]): Promise<string> {
    try {
      const { stdout } = await execFileAsync("buildah", [...this.globalArgs, ...args], {
        env: this.env,
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout;
    } catch (err) {
      const e = err as { code?: unknown; stderr?: string; stdout?: string };
      throw new Error(
        `buildah ${args.join(" ")}: exit ${String(e.code)}\n${e.stderr ?? ""}${e.stdout ?? ""}`,
      );
    }
  }

  /** Starts a long-running `buildah <args>` (e.g. `run`), stdout parsed as JSON lines. */
  spawn(args: string[]): RunningContainerProcess {
    const child = spawn("buildah", [...this.globalArgs, ...args], {
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    return new RunningContainerProcess(child);
  }
}

/** A process started with `buildah run`, and the JSON log lines it printed. */
export class RunningContainerProcess {
  readonly logs: Record<string, unknown>[] = [];
  stderr = "";
  readonly exited: Promise<number | null>;
  private readonly waiters: {
    match: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }[] = [];

  constructor(readonly child: ChildProcess) {
    child.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { text };
      }
      this.logs.push(line);
      for (const w of [...this.waiters]) {
        if (w.match(line)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
  }

  /** Resolves with the first log line matching; rejects if the process exits first. */
  waitForLog(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ match, resolve });
      void this.exited.then((code) =>
        reject(
          new Error(
            `container process exited (${code}) before the expected log line\n` +
              `stdout: ${JSON.stringify(this.logs)}\nstderr: ${this.stderr}`,
          ),
        ),
      );
    });
  }
}

/** Process ids of every descendant of `pid` (Linux /proc). */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the parenthesised command name: state, ppid, ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // the process exited while we looked
    }
  }
  const found: number[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child);
        frontier.push(child);
      }
    }
  }
  return found;
}

/** The command line of a process as its argv. */
export function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

/** Real, effective, saved and filesystem uids of a process. */
export function uids(pid: number): number[] {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const line = status.split("\n").find((l) => l.startsWith("Uid:"));
  if (!line) throw new Error(`/proc/${pid}/status: expected a Uid line, got none`);
  return line.slice(4).trim().split(/\s+/).map(Number);
}
