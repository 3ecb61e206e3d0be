/** Loopback networking helpers: free ports and port readiness. */
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** The only address the harness binds or connects to. */
export const LOOPBACK = "127.0.0.1";

/**
 * Asks the kernel for a free loopback port. For peers that cannot listen on port 0 and
 * report back (nginx, HAProxy); a tiny race with other processes is accepted.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("freePort: no port");
  return address.port;
}

/** Resolves once a TCP connection to `port` succeeds; rejects after `timeoutMs`. */
export async function waitForPort(
  port: number,
  timeoutMs = 10_000,
  isAlive?: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  for (let attempt = 0; attempt < 10_000; attempt++) {
    if (await canConnect(port)) return;
    if (isAlive && !isAlive()) throw new Error(`port ${port}: process exited before listening`);
    if (Date.now() >= deadline) break;
    await sleep(delay);
    delay = Math.min(delay * 2, 200);
  }
  throw new Error(`port ${port}: not accepting connections after ${timeoutMs} ms`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: LOOPBACK });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Resolves once the proxy's admin `GET /ready` at `admin` (host:port) answers 200 — after
 * its SVID, Kubernetes lists and warm-up, as a cluster waits before sending traffic;
 * rejects when `isAlive` says the process is gone, or after `timeoutMs`.
 */
export async function waitForReady(
  admin: string,
  timeoutMs = 30_000,
  isAlive?: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await fetch(`http://${admin}/ready`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.status)
      .catch(() => 0);
    if (status === 200) return;
    if (isAlive && !isAlive()) throw new Error(`${admin}: process exited before ready`);
    if (Date.now() > deadline) throw new Error(`${admin}: /ready not 200 after ${timeoutMs} ms`);
    await sleep(50);
  }
}
