import { type Document, parseAllDocuments } from "yaml";
import { applyToYaml, diff } from "../json-patch.js";
import { ANNOTATIONS, AnnotationError } from "./annotations.js";
import {
  type InjectSettings,
  injectPod,
  type KubeJson,
  type PodTemplate,
  uninjectPod,
} from "./pod.js";

/** Where each workload kind keeps its pod template. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Pod: [],
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  ReplicaSet: ["spec", "template"],
  ReplicationController: ["spec", "template"],
  Job: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
};

/** What happened to one object. */
export interface InjectReport {
  /** `Deployment/books`. */
  object: string;
  result: "injected" | "uninjected" | "unchanged" | "skipped" | "error";
  /** Why it was skipped, or the error. */
  reason?: string;
}

/** Options of {@link injectManifests}. */
export interface InjectManifestsOptions {
  settings: InjectSettings;
  /** Remove the proxy instead of adding it. */
  uninject?: boolean;
  /** Namespace of objects that name none (kubectl's `-n`). Default `default`. */
  namespace?: string;
}

/**
 * Injects (or removes) the proxy in every workload of a multi-document YAML stream (also
 * inside `List`s), editing only the nodes the change touches: comments, key order, other
 * objects and unknown fields come out as they went in. An object with an invalid annotation
 * is reported and left as it was; the others are still injected.
 */
export function injectManifests(
  text: string,
  options: InjectManifestsOptions,
): { output: string; reports: InjectReport[] } {
  const reports: InjectReport[] = [];
  const docs = parseAllDocuments(text, { uniqueKeys: false });
  if (!Array.isArray(docs)) return { output: text, reports };
  const out: string[] = [];
  let end = 0;
  for (const [i, doc] of docs.entries()) {
    // An object no change touches is copied byte for byte (with what precedes it).
    const source = text.slice(end, doc.range[2]);
    end = doc.range[2];
    if (doc.errors.length > 0) {
      reports.push({
        object: `document ${i + 1}`,
        result: "error",
        reason: `document ${i + 1}: not valid YAML: ${doc.errors[0]?.message.split("\n")[0]}`,
      });
      out.push(source);
      continue;
    }
    const root = doc.toJS() as unknown;
    const before = reports.length;
    if (root !== null && typeof root === "object")
      visit(doc, root as KubeJson, [], options, reports);
    const changed = reports
      .slice(before)
      .some((r) => r.result === "injected" || r.result === "uninjected");
    out.push(changed ? serialize(doc, i) : source);
  }
  out.push(text.slice(end));
  return { output: out.join(""), reports };
}

/** Every document after the first starts with `---` (kubectl's separator). */
function serialize(doc: Document, index: number): string {
  if (index > 0 && doc.directives) doc.directives.docStart = true;
  return doc.toString({ lineWidth: 0 });
}

function visit(
  doc: Document,
  obj: KubeJson,
  at: (string | number)[],
  options: InjectManifestsOptions,
  reports: InjectReport[],
): void {
  if (typeof obj.kind === "string" && obj.kind.endsWith("List") && Array.isArray(obj.items)) {
    obj.items.forEach((item: unknown, i: number) => {
      if (item !== null && typeof item === "object")
        visit(doc, item as KubeJson, [...at, "items", i], options, reports);
    });
    return;
  }
  const path = TEMPLATE_PATHS[obj.kind as string];
  if (path === undefined) return;
  const object = `${obj.kind}/${obj.metadata?.name ?? "(unnamed)"}`;
  let template: KubeJson | undefined = obj;
  for (const k of path) template = template?.[k];
  if (!template || typeof template !== "object" || !template.spec) {
    reports.push({
      object,
      result: "error",
      reason: `${object}: no pod template at ${path.join(".")}`,
    });
    return;
  }
  const old: PodTemplate = { spec: template.spec };
  if (template.metadata !== undefined) old.metadata = template.metadata;
  const base = [...at, ...path];
  try {
    let next: PodTemplate;
    if (options.uninject) next = uninjectPod(old);
    else {
      const skip = skipReason(obj, template);
      if (skip !== undefined) {
        reports.push({ object, result: "skipped", reason: skip });
        return;
      }
      next = injectPod(old, {
        object,
        namespace: obj.metadata?.namespace ?? options.namespace ?? "default",
        settings: options.settings,
      });
    }
    const ops = diff(old, next);
    applyToYaml(doc, base, ops);
    reports.push({
      object,
      result: ops.length === 0 ? "unchanged" : options.uninject ? "uninjected" : "injected",
    });
  } catch (err) {
    if (!(err instanceof AnnotationError)) throw err;
    reports.push({ object, result: "error", reason: err.message });
  }
}

/** Why a workload is not injected, if it is not. */
export function skipReason(workload: KubeJson, template: KubeJson): string | undefined {
  const value =
    template.metadata?.annotations?.[ANNOTATIONS.inject] ??
    workload.metadata?.annotations?.[ANNOTATIONS.inject];
  if (value === "disabled") return `annotation ${ANNOTATIONS.inject}: disabled`;
  // The proxy's ports would collide with the node's, and peers could not tell pods apart.
  if (template.spec?.hostNetwork === true) return "hostNetwork pods are not injected";
  return undefined;
}
