// Validates rendered objects against the official Kubernetes OpenAPI schemas, as packaged by
// kubernetes-models (generated from the API server's OpenAPI documents, one class per kind).
import { parseAllDocuments } from "yaml";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON here
type KubeJson = Record<string, any>;

/** Throws, naming the object and the schema errors, unless `obj` is valid for its kind. */
export async function validateObject(obj: KubeJson): Promise<void> {
  const [group, version] = String(obj.apiVersion).includes("/")
    ? String(obj.apiVersion).split("/")
    : ["", String(obj.apiVersion)];
  const module =
    group === ""
      ? `kubernetes-models/v1/${obj.kind}`
      : `kubernetes-models/${group}/${version}/${obj.kind}`;
  const models = (await import(module)) as Record<
    string,
    new (
      o: KubeJson,
    ) => { validate(): void }
  >;
  const Model = models[obj.kind as string];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind}/${obj.metadata?.name}: ${(err as Error).message}`);
  }
}

/** Parses a YAML stream and validates every object (List items too); returns the objects. */
export async function validateYaml(text: string): Promise<KubeJson[]> {
  const objects: KubeJson[] = [];
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS() as KubeJson | null;
    if (o === null) continue;
    if (String(o.kind).endsWith("List") && Array.isArray(o.items)) objects.push(...o.items);
    else objects.push(o);
  }
  for (const o of objects) await validateObject(o);
  return objects;
}
