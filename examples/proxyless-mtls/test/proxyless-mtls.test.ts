import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const CLIENT = "spiffe://demo.mesh/ns/demo/sa/client";
const INTRUDER = "spiffe://demo.mesh/ns/demo/sa/intruder";

interface Summary {
  allowed: {
    fetch: { status: number; appSaw: string | null };
    request: { status: number; appSaw: string | null };
    tls: string | null;
    alpn: string | null;
  };
  intruder: { status: number; reason: string | null };
  plaintext: { status: number; reason: string | null };
  wrongServer: { expected: string; refused: string };
  appServed: number;
  sidecarSaw: { clientId: string | null; tls: boolean; status: number; count: number }[];
  sidecar: { pid: number; ports: number[]; exit: number | string };
}

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first stdout line matching. */
  line: (match: RegExp) => Promise<string>;
  exited: Promise<number | null>;
}

/** Runs the example as a user would: a separate Node process. */
function run(args: string[] = []): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    out += s;
    for (const w of waiters) w();
  });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    err += s;
  });
  const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  const line = (match: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = out.split("\n").find((l) => match.test(l));
        if (found === undefined) return;
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      check();
      void exited.then(() => {
        if (waiters.delete(check)) reject(new Error(`exited before ${match}:\n${out}\n${err}`));
      });
    });
  return { child, stdout: () => out, stderr: () => err, line, exited };
}

function summaryOf(stdout: string): Summary {
  const last = stdout.trimEnd().split("\n").at(-1) as string;
  return JSON.parse(last) as Summary;
}

/** stderr minus the type-stripping notice some Node 24 releases print. */
function withoutNodeWarnings(stderr: string): string {
  return stderr
    .replace(/^.*ExperimentalWarning: Type Stripping.*\n/m, "")
    .replace(/^\(Use `node --trace-warnings.*\n/m, "");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** The sidecar exited cleanly, its process is gone and its ports are free. */
async function expectNothingLeft(sidecar: Summary["sidecar"]): Promise<void> {
  expect(sidecar.exit).toBe(0);
  expect(alive(sidecar.pid)).toBe(false);
  const free = await Promise.all(sidecar.ports.map(portFree));
  expect(free).toEqual(sidecar.ports.map(() => true));
}

describe("examples/proxyless-mtls", () => {
  it("calls the sidecar over mTLS with its own SVID; the policy admits it and refuses the rest", async () => {
    const r = run();
    const code = await r.exited;
    expect(code, r.stderr()).toBe(0);
    expect(withoutNodeWarnings(r.stderr())).toBe("");
    const s = summaryOf(r.stdout());

    // The allowed client: mTLS (TLS 1.3, HTTP/2 by ALPN) to the sidecar, and the app behind
    // it sees the client's verified identity, also when the caller forged the header.
    expect(s.allowed.tls).toBe("TLSv1.3");
    expect(s.allowed.alpn).toBe("h2");
    expect(s.allowed.fetch).toEqual({ status: 200, appSaw: CLIENT });
    expect(s.allowed.request).toEqual({ status: 200, appSaw: CLIENT });
    expect(r.stdout()).toContain(`the app saw mesh-client-id: ${CLIENT}`);
    // The sidecar itself counted them as mTLS requests from that identity.
    expect(s.sidecarSaw).toContainEqual({ clientId: CLIENT, tls: true, status: 200, count: 2 });

    // Another identity of the same trust domain: verified, then denied by the policy.
    expect(s.intruder.status).toBe(403);
    expect(s.intruder.reason).toMatch(/^forbidden by policy/);
    expect(s.sidecarSaw).toContainEqual({ clientId: INTRUDER, tls: true, status: 403, count: 1 });
    // No certificate at all: denied too.
    expect(s.plaintext.status).toBe(403);
    expect(s.sidecarSaw).toContainEqual({ clientId: null, tls: false, status: 403, count: 1 });
    // Neither reached the app: it served the allowed client's two requests only.
    expect(s.appServed).toBe(2);

    // The client side of mTLS: a server with another identity is refused.
    expect(s.wrongServer.refused).toContain("spiffe://demo.mesh/ns/demo/sa/books is not accepted");

    // Nothing left behind.
    await expectNothingLeft(s.sidecar);
  });

  it("--stay keeps the sidecar up until Ctrl-C, then stops it and exits 0", async () => {
    const r = run(["--stay"]);
    const started = await r.line(/^books .* \(pid \d+,/);
    const pid = Number(/\(pid (\d+),/.exec(started)?.[1]);
    await r.line(/Ctrl-C stops all$/);
    expect(alive(pid)).toBe(true);
    // SIGINT to the example only (a terminal would signal the sidecar too): the example
    // must stop its sidecar itself.
    r.child.kill("SIGINT");
    expect(await r.exited, r.stderr()).toBe(0);
    const s = summaryOf(r.stdout());
    expect(s.sidecar.pid).toBe(pid);
    await expectNothingLeft(s.sidecar);
  });
});

describe("README", () => {
  it("shows the same meshClient() body as src/client.ts", () => {
    const dir = new URL("..", import.meta.url);
    const readme = readFileSync(new URL("README.md", dir), "utf8");
    const client = readFileSync(new URL("src/client.ts", dir), "utf8");
    /** From the first line of the body to the function's closing brace. */
    const body = (text: string) => {
      const start = text.indexOf("  // Key + CSR");
      return text.slice(start, text.indexOf("\n}\n", start) + 3);
    };
    expect(body(client).length).toBeGreaterThan(200);
    expect(body(readme)).toBe(body(client));
  });
});
