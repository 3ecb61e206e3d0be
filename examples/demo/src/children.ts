import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** A log line of a child: its JSON, or `{ msg: <text> }` for plain lines. */
export type LogLine = Record<string, unknown>;

/** A child process of the demo, with its JSON log lines and a way to wait for one. */
export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  readonly #lines: LogLine[] = [];
  readonly #waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  readonly #log: WriteStream;
  #exit: number | string | undefined;

  constructor(
    name: string,
    command: string,
    args: string[],
    logDir: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.name = name;
    this.#log = createWriteStream(join(logDir, `${name}.log`));
    this.process = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => {
      this.process.once("exit", (code, signal) => {
        this.#exit = code ?? signal ?? "unknown";
        resolve(this.#exit);
      });
    });
    this.process.stderr?.pipe(this.#log, { end: false });
    createInterface({ input: this.process.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      this.#log.write(`${text}\n`);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text };
      }
      this.#lines.push(line);
      if (this.#lines.length > 200) this.#lines.shift();
      for (const w of this.#waiters) {
        if (w.match(line)) {
          this.#waiters.delete(w);
          w.resolve(line);
        }
      }
    });
    // An EPIPE on stdin after the child died must not crash the launcher.
    this.process.stdin?.on("error", () => {});
  }

  /** The child's pid (always set: spawn errors surface as an exit). */
  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Resolves with the first log line matching; rejects if the child exits first. */
  waitFor(match: (l: LogLine) => boolean, what: string): Promise<LogLine> {
    const seen = this.#lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve };
      this.#waiters.add(waiter);
      void this.exited.then((code) => {
        if (!this.#waiters.delete(waiter)) return;
        reject(new Error(`${this.name} exited (${code}) before ${what}; see its log`));
      });
    });
  }

  /** Sends a signal if the process is still running. */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.process.kill(sig);
  }

  /** Closes the log file once the process has exited. */
  async closeLog(): Promise<void> {
    await this.exited;
    await new Promise<void>((resolve) => this.#log.end(resolve));
  }
}

/** GET `http://address/path`; resolves with the status, or 0 when it could not connect. */
export function httpStatus(address: string, path: string, method = "GET"): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      `http://${address}${path}`,
      { method, agent: false, timeout: 2_000 },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
    req.end();
  });
}

/**
 * Polls a proxy's admin `/ready` until it answers 200 (the proxy is ready only once its
 * listeners are bound and, with identity, it holds an SVID). Backs off from 20 ms to 250 ms.
 */
export async function waitReady(child: Child, admin: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    if (!child.running) throw new Error(`${child.name} exited before it was ready; see its log`);
    if ((await httpStatus(admin, "/ready")) === 200) return;
    if (performance.now() > deadline) {
      throw new Error(`${child.name}: /ready did not answer 200 within ${timeoutMs}ms`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(250, delay * 2);
  }
}
