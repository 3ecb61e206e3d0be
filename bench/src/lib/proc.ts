/**
 * Process management for the harness: every peer, backend and load generator runs as a
 * child process started here, optionally pinned with `taskset`, and stopped by PID at the
 * end, on failure, or on Ctrl-C.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** A child process the harness started and owns. */
export interface ManagedProcess {
  /** Human name used in logs and results. */
  readonly name: string;
  /** OS process id (taskset execs the command, so this is the command's PID). */
  readonly pid: number;
  /** CPU list it was pinned to, or `null` when not pinned. */
  readonly cpus: string | null;
  /** The full command line as started. */
  readonly command: string[];
  /** Resolves with the exit code (or signal name) when the process exits. */
  readonly exited: Promise<number | string>;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far (bounded to the last 64 KiB). */
  stderr(): string;
  /** Waits until a stdout line matches `pattern`; rejects on exit or timeout. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
}

/** Options for {@link ProcessManager.start}. */
export interface StartOptions {
  /** CPU list for `taskset -c` (e.g. `"0"`); ignored when taskset is unavailable. */
  cpus?: string | null;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
}

const MAX_CAPTURE = 64 * 1024;

let tasksetAvailable: boolean | undefined;

/** Whether `taskset` can be used on this machine (checked once). */
export function hasTaskset(): boolean {
  if (tasksetAvailable === undefined) {
    try {
      execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
      tasksetAvailable = true;
    } catch {
      tasksetAvailable = false;
    }
  }
  return tasksetAvailable;
}

/**
 * Starts child processes and guarantees they are stopped. One instance per harness run;
 * `install()` hooks SIGINT/SIGTERM/exit so nothing outlives the harness.
 */
export class ProcessManager {
  readonly #live = new Map<number, { proc: ManagedProcess; child: ChildProcess }>();
  #installed = false;
  #shuttingDown = false;

  /** Hooks process signals so every child is stopped on Ctrl-C or failure. */
  install(): void {
    if (this.#installed) return;
    this.#installed = true;
    const onSignal = (signal: NodeJS.Signals) => {
      this.#shuttingDown = true;
      process.stderr.write(`\nbench: ${signal}, stopping ${this.#live.size} process(es)\n`);
      void this.stopAll().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    process.once("exit", () => this.killAllSync());
  }

  /** Starts `command` with `args`, pinned to `options.cpus` when taskset works. */
  start(name: string, command: string, args: string[], options: StartOptions = {}): ManagedProcess {
    if (this.#shuttingDown) throw new Error(`${name}: not started, the harness is shutting down`);
    const pin = options.cpus && hasTaskset() ? options.cpus : null;
    const argv = pin ? ["taskset", "-c", pin, command, ...args] : [command, ...args];
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
    });
    if (child.pid === undefined) throw new Error(`${name}: failed to start ${argv.join(" ")}`);
    let out = "";
    let err = "";
    const lineWaiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      const before = out.length;
      out += chunk;
      if (lineWaiters.size === 0) return;
      const lines = out.slice(Math.max(0, out.lastIndexOf("\n", before) + 1)).split("\n");
      for (const waiter of lineWaiters) {
        const line = lines.find((l) => waiter.pattern.test(l));
        if (line !== undefined) {
          lineWaiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    });
    child.stderr!.on("data", (chunk: string) => {
      err = (err + chunk).slice(-MAX_CAPTURE);
    });
    const exited = new Promise<number | string>((resolve) => {
      child.once("exit", (code, signal) => {
        this.#live.delete(child.pid!);
        resolve(code ?? signal ?? "unknown");
      });
      child.once("error", (error) => {
        this.#live.delete(child.pid!);
        err += String(error);
        resolve("spawn-error");
      });
    });
    const proc: ManagedProcess = {
      name,
      pid: child.pid,
      cpus: pin,
      command: argv,
      exited,
      stdout: () => out,
      stderr: () => err,
      waitForLine: (pattern, timeoutMs) => {
        const existing = out.split("\n").find((l) => pattern.test(l));
        if (existing !== undefined) return Promise.resolve(existing);
        return new Promise<string>((resolve, reject) => {
          const waiter = { pattern, resolve: (line: string) => done(() => resolve(line)) };
          const timer = setTimeout(
            () =>
              done(() =>
                reject(
                  new Error(
                    `${name}: no line matching ${pattern} in ${timeoutMs} ms; stderr: ${err.slice(-500)}`,
                  ),
                ),
              ),
            timeoutMs,
          );
          const done = (fn: () => void) => {
            clearTimeout(timer);
            lineWaiters.delete(waiter);
            fn();
          };
          lineWaiters.add(waiter);
          void exited.then((code) =>
            done(() =>
              reject(
                new Error(
                  `${name}: exited (${code}) before ${pattern}; stderr: ${err.slice(-500)}`,
                ),
              ),
            ),
          );
        });
      },
    };
    this.#live.set(child.pid, { proc, child });
    return proc;
  }

  /** Stops one process: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(proc: ManagedProcess, graceMs = 2000): Promise<void> {
    const entry = this.#live.get(proc.pid);
    if (!entry) return;
    signal(proc.pid, "SIGTERM");
    const exited = await Promise.race([
      proc.exited.then(() => true),
      sleep(graceMs).then(() => false),
    ]);
    if (!exited) {
      signal(proc.pid, "SIGKILL");
      await Promise.race([proc.exited, sleep(graceMs)]);
    }
    this.#live.delete(proc.pid);
  }

  /** Stops every live process started by this manager. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#live.values()].map(({ proc }) => this.stop(proc)));
  }

  /** Synchronous last resort on process exit: SIGKILL each remaining child by PID. */
  killAllSync(): void {
    for (const pid of this.#live.keys()) signal(pid, "SIGKILL");
    this.#live.clear();
  }

  /** PIDs currently alive (for tests and logs). */
  livePids(): number[] {
    return [...this.#live.keys()];
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

let clockTicks: number | undefined;

/** `getconf CLK_TCK`: the unit of utime/stime in /proc/<pid>/stat (usually 100). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Resident set size of `pid` in MiB, from /proc/<pid>/status (VmRSS), or `null`. */
export function rssMb(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** User + system CPU time of `pid` in seconds, from /proc/<pid>/stat, or `null`. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

/** Samples the RSS of `pid` every `intervalMs` until stopped; returns the maximum seen. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number | null } {
  let max: number | null = rssMb(pid);
  const timer = setInterval(() => {
    const v = rssMb(pid);
    if (v !== null && (max === null || v > max)) max = v;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const v = rssMb(pid);
      if (v !== null && (max === null || v > max)) max = v;
      return max;
    },
  };
}
