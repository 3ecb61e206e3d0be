import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { ProxyLogger } from "../../log.js";
import { ANNOTATIONS, AnnotationError } from "../inject/annotations.js";
import { skipReason } from "../inject/manifests.js";
import { type InjectSettings, injectPod, type KubeJson, type PodTemplate } from "../inject/pod.js";
import { diff, type PatchOperation } from "../json-patch.js";

/** The path the MutatingWebhookConfiguration calls. */
export const INJECT_PATH = "/inject";
/** Set on the control plane's pods (`mesh-proxy install`): never injected, wherever they run. */
export const CONTROL_PLANE_LABEL = "mesh.dev/control-plane";
/** Namespaces never injected: the cluster's own. */
const SYSTEM_NAMESPACES = new Set(["kube-system", "kube-public", "kube-node-lease"]);
/** Bodies larger than this are refused (a Pod is far smaller; the API server caps at 3 MiB). */
const MAX_BODY = 4 * 1024 * 1024;

/** `admission.k8s.io/v1` AdmissionReview, the parts the injector reads. */
export interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request?: {
    uid: string;
    kind?: { group: string; version: string; kind: string };
    namespace?: string;
    operation?: string;
    name?: string;
    object?: KubeJson;
    dryRun?: boolean;
  };
}

/** The `response` of an AdmissionReview. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: "JSONPatch";
  /** Base64 of the JSON Patch. */
  patch?: string;
  status?: { code: number; message: string };
  warnings?: string[];
}

/** What the injector decides with (injectable for tests). */
export interface AdmitContext {
  settings: InjectSettings;
  /** The control plane's namespace: its pods are never injected. */
  ownNamespace: string;
  /** The annotations of a namespace (GET /api/v1/namespaces/<name>). */
  namespaceAnnotations(namespace: string): Promise<Record<string, string>>;
  logger?: ProxyLogger;
}

/**
 * Decides one AdmissionReview: Pods being created in a namespace that is not the cluster's or
 * the control plane's, whose own `mesh.dev/inject` annotation (or else their namespace's) says
 * `enabled`, get the JSON Patch that `mesh-proxy inject` would apply. Everything else is
 * allowed unchanged. An invalid annotation refuses the pod with a message naming it.
 */
export async function admit(
  review: AdmissionReview,
  ctx: AdmitContext,
): Promise<AdmissionResponse> {
  const req = review.request;
  if (!req || typeof req.uid !== "string")
    throw new TypeError("request.uid: expected the request's uid");
  const allow = (reason: string, warnings?: string[]): AdmissionResponse => {
    ctx.logger?.debug({ uid: req.uid, reason }, "not injected");
    return { uid: req.uid, allowed: true, ...(warnings ? { warnings } : {}) };
  };
  const pod = req.object;
  if (req.kind?.kind !== "Pod" || req.kind.group !== "" || !pod?.spec) return allow("not a pod");
  if (req.operation !== undefined && req.operation !== "CREATE") return allow("not a create");
  const namespace = req.namespace ?? pod.metadata?.namespace ?? "default";
  if (SYSTEM_NAMESPACES.has(namespace)) return allow(`namespace ${namespace}`);
  if (namespace === ctx.ownNamespace) return allow("the control plane's namespace");
  if (pod.metadata?.labels?.[CONTROL_PLANE_LABEL] !== undefined)
    return allow("a control-plane pod");
  const name = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ""}*`;
  const object = `Pod/${name} in namespace ${namespace}`;
  let wanted: string | undefined = pod.metadata?.annotations?.[ANNOTATIONS.inject];
  if (wanted === undefined) {
    try {
      wanted = (await ctx.namespaceAnnotations(namespace))[ANNOTATIONS.inject];
    } catch (err) {
      // failurePolicy Ignore in spirit: the pod starts without the mesh, and says why.
      const message = `not injected: namespace ${namespace} could not be read: ${(err as Error).message}`;
      ctx.logger?.warn({ uid: req.uid, namespace, err: (err as Error).message }, message);
      return allow(message, [`${object}: ${message}`]);
    }
  }
  if (wanted !== "enabled") return allow(`${ANNOTATIONS.inject} is ${wanted ?? "absent"}`);
  const skip = skipReason(pod, pod);
  if (skip !== undefined) return allow(skip);
  const before: PodTemplate = { spec: pod.spec };
  if (pod.metadata !== undefined) before.metadata = pod.metadata;
  let ops: PatchOperation[];
  try {
    ops = diff(before, injectPod(before, { object, namespace, settings: ctx.settings }));
  } catch (err) {
    if (!(err instanceof AnnotationError)) throw err;
    ctx.logger?.warn({ uid: req.uid, err: err.message }, "refused: invalid annotation");
    return { uid: req.uid, allowed: false, status: { code: 400, message: err.message } };
  }
  ctx.logger?.info({ uid: req.uid, pod: name, namespace, dryRun: req.dryRun === true }, "injected");
  if (ops.length === 0) return { uid: req.uid, allowed: true };
  return {
    uid: req.uid,
    allowed: true,
    patchType: "JSONPatch",
    patch: Buffer.from(JSON.stringify(ops)).toString("base64"),
  };
}

/** A running injector. */
export interface Injector {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Options of {@link startInjector}. */
export interface InjectorOptions extends AdmitContext {
  /** PEM certificate chain and key the webhook serves (the Service's DNS name). */
  cert: string | Buffer;
  key: string | Buffer;
  host?: string;
  /** Default 8443; 0 picks a free port. */
  port?: number;
}

/**
 * Serves the mutating admission webhook over HTTPS: `POST /inject` takes and answers an
 * `admission.k8s.io/v1` AdmissionReview; `GET /ready` answers 200 (the readiness probe).
 */
export async function startInjector(options: InjectorOptions): Promise<Injector> {
  const server: Server = createServer(
    { cert: options.cert, key: options.key, minVersion: "TLSv1.2" },
    (req, res) => {
      handle(req, res, options).catch((err: Error) => {
        options.logger?.error({ err: err.message }, "admission request failed");
        if (!res.headersSent) send(res, 500, { error: err.message });
        else res.destroy();
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8443, options.host ?? "0.0.0.0", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: AdmitContext): Promise<void> {
  const path = new URL(req.url ?? "/", "https://injector").pathname;
  if (req.method === "GET" && (path === "/ready" || path === "/live"))
    return send(res, 200, { ok: true });
  if (path !== INJECT_PATH) return send(res, 404, { error: `no route for ${path}` });
  if (req.method !== "POST") return send(res, 405, { error: "expected POST" });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) return send(res, 413, { error: `body larger than ${MAX_BODY} bytes` });
    chunks.push(c as Buffer);
  }
  let review: AdmissionReview;
  try {
    review = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return send(res, 400, { error: "expected an AdmissionReview (JSON)" });
  }
  if (
    review?.kind !== "AdmissionReview" ||
    review.apiVersion !== "admission.k8s.io/v1" ||
    !review.request?.uid
  )
    return send(res, 400, {
      error: `expected an admission.k8s.io/v1 AdmissionReview with request.uid, got ${JSON.stringify(review?.apiVersion)} ${JSON.stringify(review?.kind)}`,
    });
  const response = await admit(review, ctx);
  send(res, 200, { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response });
}
