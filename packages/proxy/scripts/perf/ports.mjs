/** Port helpers shared by the perf scripts. */
import net from "node:net";

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once `port` on 127.0.0.1 accepts a connection; rejects if `child` (optional)
 * exits first, or after `timeoutMs`.
 */
export async function waitPort(port, child, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child !== undefined && child.exitCode !== null)
      throw new Error(
        `${child.label ?? "process"} exited ${child.exitCode} before port ${port} opened`,
      );
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
}

/**
 * Resolves once the proxy's admin `GET /ready` on 127.0.0.1:`port` answers 200 (after its
 * warm-up), as Kubernetes would wait before sending traffic; rejects after `timeoutMs`.
 */
export async function waitReady(port, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await fetch(`http://127.0.0.1:${port}/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`port ${port}: /ready never answered 200`);
}
