/**
 * Just enough of the Chrome DevTools Protocol to drive a headless Chromium from a test:
 * launch, open a page, evaluate, wait for a DOM condition (a MutationObserver in the page,
 * not polling), screenshot. Node's built-in WebSocket speaks to it; no browser-automation
 * dependency needed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

/** A headless Chromium with one page. */
export class Browser {
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #session = "";

  private constructor(child: ChildProcess, dir: string, ws: WebSocket) {
    this.#child = child;
    this.#dir = dir;
    this.#ws = ws;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as {
        id?: number;
        result?: Record<string, unknown>;
        error?: { message: string };
      };
      if (msg.id === undefined) return;
      const p = this.#pending.get(msg.id);
      if (p === undefined) return;
      this.#pending.delete(msg.id);
      if (msg.error !== undefined) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result ?? {});
    });
  }

  /** Starts `chromium --headless` with a throwaway profile and connects to it. */
  static async launch(bin = "chromium"): Promise<Browser> {
    const dir = mkdtempSync(join(tmpdir(), "mesh-chromium-"));
    const child = spawn(
      bin,
      [
        "--headless=new",
        "--no-sandbox", // tests may run as root (CI containers), where the sandbox refuses
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--remote-debugging-port=0",
        `--user-data-dir=${dir}`,
        "about:blank",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const endpoint = await new Promise<string>((resolve, reject) => {
      let err = "";
      child.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m !== null) resolve(m[1] as string);
      });
      child.once("exit", (code) => reject(new Error(`chromium exited ${code}: ${err}`)));
      child.once("error", reject);
    });
    const ws = new WebSocket(endpoint);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener("error", () => reject(new Error("cannot connect to chromium")), {
        once: true,
      });
    });
    return new Browser(child, dir, ws);
  }

  /** Sends a CDP command (to the page once one is open). */
  send(method: string, params: Record<string, unknown> = {}, browser = false) {
    const id = this.#next++;
    const msg: Record<string, unknown> = { id, method, params };
    if (!browser && this.#session !== "") msg.sessionId = this.#session;
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify(msg));
    });
  }

  /** Opens `url` in a new page of the given size and waits for its load event. */
  async open(url: string, width = 1440, height = 1000): Promise<void> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" }, true);
    const { sessionId } = await this.send(
      "Target.attachToTarget",
      { targetId, flatten: true },
      true,
    );
    this.#session = sessionId as string;
    await this.send("Page.enable");
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    await this.send("Page.navigate", { url });
    await this.waitFor("document.readyState === 'complete'");
  }

  /** Evaluates an expression in the page (promises awaited) and returns its value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    })) as { result: { value: T }; exceptionDetails?: { exception?: { description?: string } } };
    if (r.exceptionDetails !== undefined)
      throw new Error(r.exceptionDetails.exception?.description ?? "evaluation failed");
    return r.result.value;
  }

  /**
   * Resolves with `predicate`'s value once it is truthy: checked now and on every DOM
   * change (a MutationObserver in the page). Rejects after `timeoutMs`, naming it.
   */
  waitFor<T = unknown>(predicate: string, timeoutMs = 15_000): Promise<T> {
    return this.evaluate<T>(`new Promise((resolve, reject) => {
      const check = () => { try { const v = (${predicate}); if (v) { done(); resolve(v); return true; } } catch {} return false; };
      const observer = new MutationObserver(check);
      const timer = setTimeout(() => { done(); reject(new Error("timed out waiting for: " + ${JSON.stringify(predicate)})); }, ${timeoutMs});
      function done() { observer.disconnect(); clearTimeout(timer); }
      if (!check()) observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    })`);
  }

  /** A PNG of the whole page. */
  async screenshot(): Promise<Buffer> {
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    });
    return Buffer.from(data as string, "base64");
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    this.#ws.close();
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const exited = new Promise((r) => this.#child.once("exit", r));
      this.#child.kill("SIGTERM");
      await exited;
    }
    // Chromium's helper processes may still be writing the profile: retry ENOTEMPTY.
    rmSync(this.#dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}
