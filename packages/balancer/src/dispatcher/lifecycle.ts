/**
 * undici's `Dispatcher.close()` / `destroy()` take an optional callback or return a promise.
 * These helpers do that plumbing once for every dispatcher in this package.
 */

/** Returns `done`, or — when a callback was given — calls it once `done` settles. */
export function promiseOrCallback(
  done: Promise<void>,
  callback: (() => void) | undefined,
): Promise<void> | void {
  if (callback === undefined) return done;
  done.then(callback, callback);
}

/** Splits `destroy()`'s overloaded arguments into the error and the callback. */
export function destroyArgs(
  a: Error | null | (() => void) | undefined,
  b: (() => void) | undefined,
): { err: Error | null; callback: (() => void) | undefined } {
  return typeof a === "function" ? { err: null, callback: a } : { err: a ?? null, callback: b };
}
