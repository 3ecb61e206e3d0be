/**
 * Port and readiness waits of the perf scripts: the benchmark harness's own
 * (bench/src/lib/net.ts), under the signatures the scripts use.
 */
import { freePort, waitForPort, waitForReady } from "../../../../bench/src/lib/net.ts";

export { freePort };

/**
 * Resolves once `port` on 127.0.0.1 accepts a connection; rejects if `child` (optional)
 * exits first, or after `timeoutMs`.
 */
export function waitPort(port, child, timeoutMs = 60_000) {
  return waitForPort(port, timeoutMs, child && (() => child.exitCode === null));
}

/**
 * Resolves once the proxy's admin `GET /ready` on 127.0.0.1:`port` answers 200 (after its
 * warm-up), as Kubernetes would wait before sending traffic; rejects after `timeoutMs`.
 */
export function waitReady(port, timeoutMs = 60_000) {
  return waitForReady(`127.0.0.1:${port}`, timeoutMs);
}
