import { formatPath } from "./errors.js";

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Paths (`identity.issuer.url`) of the fields that differ between two parsed config
 * sections: leaves that changed, were added or were removed. Arrays compare whole.
 */
export function changedPaths(
  before: unknown,
  after: unknown,
  at: readonly PropertyKey[],
): string[] {
  if (isObject(before) && isObject(after)) {
    const out: string[] = [];
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)]))
      out.push(...changedPaths(before[key], after[key], [...at, key]));
    return out;
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [formatPath(at)];
}
