import { type Document, isCollection, isMap, isSeq, type Node } from "yaml";

/** One RFC 6902 operation (the subset a diff produces). */
export type PatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** RFC 6901: `~` → `~0`, `/` → `~1` (annotation keys such as `mesh.dev/inject` have a `/`). */
export function pointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${String(s).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

function parsePointer(path: string): string[] {
  return path
    .split("/")
    .slice(1)
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && equal(a[k], b[k]));
  }
  return false;
}

/**
 * The operations that turn `from` into `to`, applied in order. Objects are compared key by
 * key and arrays by their common prefix and suffix, so a sidecar inserted at the front of
 * `initContainers` is one `add` and the user's other entries (and, in YAML, their comments)
 * stay untouched. The admission webhook sends these; `inject` applies them to the YAML.
 */
export function diff(from: unknown, to: unknown, at: (string | number)[] = []): PatchOperation[] {
  if (equal(from, to)) return [];
  if (isObject(from) && isObject(to)) {
    const ops: PatchOperation[] = [];
    for (const k of Object.keys(from))
      if (!(k in to)) ops.push({ op: "remove", path: pointer([...at, k]) });
    for (const [k, v] of Object.entries(to)) {
      if (!(k in from)) ops.push({ op: "add", path: pointer([...at, k]), value: v });
      else ops.push(...diff(from[k], v, [...at, k]));
    }
    return ops;
  }
  if (Array.isArray(from) && Array.isArray(to)) {
    let pre = 0;
    while (pre < from.length && pre < to.length && equal(from[pre], to[pre])) pre++;
    let suf = 0;
    while (
      suf < from.length - pre &&
      suf < to.length - pre &&
      equal(from[from.length - 1 - suf], to[to.length - 1 - suf])
    )
      suf++;
    const oldMid = from.slice(pre, from.length - suf);
    const newMid = to.slice(pre, to.length - suf);
    if (oldMid.length === newMid.length)
      return oldMid.flatMap((o, i) => diff(o, newMid[i], [...at, pre + i]));
    const ops: PatchOperation[] = [];
    for (let i = 0; i < oldMid.length; i++) ops.push({ op: "remove", path: pointer([...at, pre]) });
    for (const [i, v] of newMid.entries())
      ops.push({ op: "add", path: pointer([...at, pre + i]), value: v });
    return ops;
  }
  return [{ op: "replace", path: pointer(at), value: to }];
}

/**
 * Applies `ops` (from {@link diff}) to the YAML node at `base` in `doc`, editing only the
 * nodes they name, so comments, key order and fields the operations do not touch are kept.
 */
export function applyToYaml(
  doc: Document,
  base: readonly (string | number)[],
  ops: readonly PatchOperation[],
): void {
  for (const op of ops) {
    const path = [...base, ...parsePointer(op.path)];
    const key = path[path.length - 1] as string | number;
    // A flow collection (`{ name: p }`) on the way gets block style: a sidecar written into
    // one-line flow YAML would come out as one unreadable flow mapping.
    for (let i = 0; i < path.length; i++) {
      const node = i === 0 ? doc.contents : doc.getIn(path.slice(0, i), true);
      if (isCollection(node) && node.flow) node.flow = false;
    }
    const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
    if (isSeq(parent)) {
      const index = Number(key);
      if (op.op === "remove") parent.items.splice(index, 1);
      else if (op.op === "add") parent.items.splice(index, 0, doc.createNode(op.value) as Node);
      else parent.items[index] = doc.createNode(op.value) as Node;
    } else if (isMap(parent)) {
      if (op.op === "remove") parent.delete(key);
      else parent.set(key, doc.createNode(op.value));
    } else {
      throw new Error(`cannot apply ${op.op} at ${op.path}: the parent is not a map or list`);
    }
  }
}
