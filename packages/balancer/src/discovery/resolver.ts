import type { EndpointInit } from "../endpoints/endpoint.js";

/** One update from a {@link Resolver}. */
export type ResolverUpdate =
  /** The complete current endpoint set (not a delta). */
  | { readonly type: "endpoints"; readonly endpoints: readonly EndpointInit[] }
  /** Discovery failed; consumers keep the last good set. */
  | { readonly type: "error"; readonly error: Error };

/**
 * Discovery: an async iterable of endpoint-set updates. Each iteration starts its own watch
 * and stops it when the consumer stops iterating (`break` / `return()`). Every `endpoints`
 * update is the full set, so a consumer needs no memory of earlier updates; `error` updates
 * report trouble without emptying anything. A Kubernetes EndpointSlice resolver fits the same
 * shape: merge slices, yield the full set.
 */
export interface Resolver extends AsyncIterable<ResolverUpdate> {
  /** Human-readable source, e.g. `dns:api.internal:8080`, used in errors and snapshots. */
  readonly source: string;
}

/**
 * @internal A single-consumer queue turned into an async iterator. `start` begins producing and
 * returns a cleanup function; consecutive endpoint updates coalesce to the newest.
 */
export function updateStream(
  start: (push: (update: ResolverUpdate) => void) => () => void,
): AsyncIterator<ResolverUpdate> & AsyncIterable<ResolverUpdate> {
  const queue: ResolverUpdate[] = [];
  let waiting: ((r: IteratorResult<ResolverUpdate>) => void) | undefined;
  let done = false;
  let cleanup: (() => void) | undefined;
  const push = (update: ResolverUpdate) => {
    if (done) return;
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w({ value: update, done: false });
      return;
    }
    const last = queue[queue.length - 1];
    if (last && last.type === "endpoints" && update.type === "endpoints")
      queue[queue.length - 1] = update;
    else queue.push(update);
  };
  const finish = (): IteratorResult<ResolverUpdate> => {
    if (!done) {
      done = true;
      queue.length = 0;
      cleanup?.();
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
    }
    return { value: undefined, done: true };
  };
  cleanup = start(push);
  return {
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift()!, done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return() {
      return Promise.resolve(finish());
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
