import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Shared through the global symbol registry, so two copies of `@mesh/core` in one process
 * (a publisher and a subscriber resolved to different versions) still agree.
 */
const KEY = Symbol.for("@mesh/core.unobserved");
const shared = globalThis as Record<symbol, AsyncLocalStorage<true> | undefined>;
const scope: AsyncLocalStorage<true> = shared[KEY] ?? new AsyncLocalStorage<true>();
shared[KEY] = scope;

/**
 * Runs `fn` so that the mesh events published from it, and from all the asynchronous work
 * it starts (connections it opens, servers it listens with, their requests), are not
 * observed: `@mesh/metrics` does not count them and the proxy's tap does not show them.
 * For synthetic traffic such as the proxy's warm-up before `/ready`.
 *
 * @public
 */
export function runUnobserved<T>(fn: () => T): T {
  return scope.run(true, fn);
}

/**
 * True inside {@link runUnobserved}: a mesh-event subscriber returns early when it is.
 *
 * @public
 */
export function isUnobserved(): boolean {
  return scope.getStore() === true;
}
