// A fake Kubernetes API server for tests (there is no cluster on these machines). It speaks
// the real protocol on the real paths, over TLS with bearer tokens: list with a collection
// resourceVersion, `?watch=1` chunked JSON event streams (ADDED/MODIFIED/DELETED, BOOKMARK,
// ERROR 410 "Expired" for a compacted version), label and field selectors, the legacy
// discovery documents kubectl reads, TokenReview, SelfSubjectAccessReview and
// SubjectAccessReview (from a grants table). Objects are shaped as in the Kubernetes API
// reference (EndpointSlice discovery.k8s.io/v1; Pod, Service, Secret, ConfigMap v1; Deployment
// apps/v1; cluster-scoped Namespace v1 and MutatingWebhookConfiguration
// admissionregistration.k8s.io/v1 for the injector's lookups and `check --kubernetes`). `kubectl get`/`get --watch` against it is tested in
// packages/balancer/test/kubernetes-kubectl.test.ts, which is what keeps it honest.
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";

/** The fake's serving certificate (self-signed, SAN 127.0.0.1 and localhost, valid to 2126). */
export const FAKE_APISERVER_CA = `-----BEGIN CERTIFICATE-----
MIIBwjCCAWigAwIBAgIUF9hSR6wclZnAmBiZ+UFJdVga3TkwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTZmFrZS1rdWJlLWFwaXNlcnZlcjAgFw0yNjEyMDcwOTM1NDda
GA8yMTI2MTExMzA5MzU0N1owHjEcMBoGA1UEAwwTZmFrZS1rdWJlLWFwaXNlcnZl
cjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDVbJ9UwUSwdA/eo+IppePctKOKQ
7GpUt0WsKv0UlP65cTz9XHF3LmbbcrVjT0OQGd3GjVKSTduMGZcTULPSDbSjgYEw
fzAdBgNVHQ4EFgQUtIlT25cZAiFNuMatc3CYH+CGcsIwHwYDVR0jBBgwFoAUtIlT
25cZAiFNuMatc3CYH+CGcsIwGgYDVR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MAwG
A1UdEwEB/wQCMAAwEwYDVR0lBAwwCgYIKwYBBQUHAwEwCgYIKoZIzj0EAwIDSAAw
RQIhAMpXecUUk/9x/0Ztx/3vSmUTf1GWbrf5Epp7LyM/FeJ3AiBSzZUBXyljfkjl
7uCEOfp9Mzc5TAP0OnsOcbi1kzgWfg==
-----END CERTIFICATE-----
`;

const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgL7+RI+w8/MfyrsHx
dQ9nRjGJx8NztTzJ/4Rd03w8k0WhRANCAAQ1WyfVMFEsHQP3qPiKaXj3LSjikOxq
VLdFrCr9FJT+uXE8/Vxxdy5m23K1Y09DkBndxo1Skk3bjBmXE1Cz0g20
-----END PRIVATE KEY-----
`;

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON here
export type KubeObject = Record<string, any> & {
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    // biome-ignore lint/suspicious/noExplicitAny: free-form metadata (uid, ownerReferences …)
    [field: string]: any;
  };
};

interface Resource {
  group: string; // "" for the core group
  version: string;
  kind: string;
  plural: string;
  shortNames?: string[];
  /** Cluster-scoped kinds (Namespace, MutatingWebhookConfiguration) live outside namespaces. */
  cluster?: boolean;
}

const RESOURCES: Resource[] = [
  { group: "", version: "v1", kind: "Pod", plural: "pods", shortNames: ["po"] },
  { group: "", version: "v1", kind: "Service", plural: "services", shortNames: ["svc"] },
  { group: "", version: "v1", kind: "Secret", plural: "secrets" },
  {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    shortNames: ["sa"],
  },
  { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", shortNames: ["cm"] },
  {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    shortNames: ["ns"],
    cluster: true,
  },
  {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    shortNames: ["deploy"],
  },
  { group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", plural: "endpointslices" },
  {
    group: "admissionregistration.k8s.io",
    version: "v1",
    kind: "MutatingWebhookConfiguration",
    plural: "mutatingwebhookconfigurations",
    cluster: true,
  },
];
const byKind = new Map(RESOURCES.map((r) => [r.kind, r]));

interface Watcher {
  resource: Resource;
  namespace: string;
  labels: Record<string, string>;
  fields: Record<string, string>;
  bookmarks: boolean;
  res: ServerResponse;
}

interface HistoryEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeObject;
}

/** What a TokenReview of a token answers. */
export interface FakeTokenReview {
  username: string;
  uid?: string;
  groups?: string[];
  /** Audiences the token was issued for; a review naming others is not authenticated. */
  audiences?: string[];
}

/** A running fake API server. */
export interface FakeKubeApiserver {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** PEM of the serving certificate (what a client's `ca` must hold). */
  readonly ca: string;
  /** Bearer tokens the server accepts; replace to simulate a rotated service-account token. */
  tokens: Set<string>;
  /** Tokens a TokenReview authenticates, and as whom. */
  readonly reviews: Map<string, FakeTokenReview>;
  /** Whether SelfSubjectAccessReview allows `create tokenreviews`. Default true. */
  allowTokenReviews: boolean;
  /**
   * What a SubjectAccessReview allows each user (`system:serviceaccount:NS:SA`) or group
   * (`system:serviceaccounts:NS`): entries
   * `"<verb> <group>/<resource>"` (core group: `"get /namespaces"`). Users not listed get nothing.
   */
  readonly grants: Map<string, string[]>;
  /** Ends every watch right after its backlog, as a misbehaving proxy in between would. */
  endWatchesAtOnce: boolean;
  /** Every request as `METHOD path?query`, in order (for assertions). */
  readonly requests: string[];
  /** Creates or replaces an object (a new resourceVersion, a watch event). */
  apply(object: KubeObject): KubeObject;
  /** Deletes an object (a DELETED event). */
  remove(kind: string, namespace: string, name: string): void;
  /** The current resourceVersion. */
  readonly resourceVersion: number;
  /** Forgets history: watches from any older resourceVersion get ERROR 410 Expired. */
  compact(): void;
  /** Sends a BOOKMARK with the current resourceVersion on every watch that asked for them. */
  bookmark(): void;
  /** Drops every open watch connection (as a restarting API server or load balancer does). */
  dropWatches(): void;
  /** Number of open watch streams. */
  readonly watches: number;
  /** Resolves when the number of open watches reaches `n`. */
  waitForWatches(n: number): Promise<void>;
  /**
   * Holds every list (a collection GET that is not a watch) until the returned function is
   * called; held lists then answer with the objects as they are at release.
   */
  holdLists(): () => void;
  /** Resolves with the first request (as {@link requests} records it) matching, past or future. */
  waitForRequest(match: (request: string) => boolean): Promise<string>;
  /** Stops listening (API server down); `start()` listens again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Writes a kubeconfig for this server (token auth) and returns nothing. */
  writeKubeconfig(path: string, token: string, namespace?: string): void;
  close(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
};

const status = (code: number, reason: string, message: string) => ({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message,
  reason,
  code,
});

/** A (Self)SubjectAccessReview answer, as the authorizer writes it. */
const accessReview = (kind: string, spec: unknown, allowed: boolean) => ({
  kind,
  apiVersion: "authorization.k8s.io/v1",
  metadata: { creationTimestamp: null },
  spec,
  status: allowed ? { allowed: true } : { allowed: false, reason: "no RBAC policy matched" },
});

function parseSelector(text: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(",")) {
    const m = /^([^=!]+)==?(.*)$/.exec(part.trim());
    if (!m) throw new Error(`unsupported selector ${JSON.stringify(part)}`);
    out[m[1] as string] = m[2] as string;
  }
  return out;
}

function matches(o: KubeObject, labels: Record<string, string>, fields: Record<string, string>) {
  for (const [k, v] of Object.entries(labels)) if (o.metadata.labels?.[k] !== v) return false;
  for (const [k, v] of Object.entries(fields)) {
    if (k === "metadata.name" && o.metadata.name !== v) return false;
    if (k === "metadata.namespace" && o.metadata.namespace !== v) return false;
  }
  return true;
}

function apiVersionOf(r: Resource) {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

function resourceList(r: Resource[]) {
  return r.map((x) => ({
    name: x.plural,
    singularName: x.kind.toLowerCase(),
    namespaced: !x.cluster,
    kind: x.kind,
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    ...(x.shortNames ? { shortNames: x.shortNames } : {}),
  }));
}

/** Starts a fake API server on 127.0.0.1 (port 0), accepting bearer `tokens`. */
export async function startFakeKubeApiserver(
  options: { tokens?: string[] } = {},
): Promise<FakeKubeApiserver> {
  let rv = 100;
  let compactedAt = 0;
  const store = new Map<string, KubeObject>(); // kind/ns/name
  const history: HistoryEvent[] = [];
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const waiters: { n: number; resolve: () => void }[] = [];
  const requestWaiters: { match: (r: string) => boolean; resolve: (r: string) => void }[] = [];
  let listGate: Promise<void> | undefined;
  const key = (kind: string, ns: string, name: string) => `${kind}/${ns}/${name}`;
  const notifyWaiters = () => {
    for (const w of [...waiters])
      if (watchers.size === w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
  };

  const emit = (type: string, object: unknown, w: Watcher) => {
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const publish = (e: HistoryEvent) => {
    history.push(e);
    for (const w of watchers) {
      if (w.resource.kind !== e.object.kind) continue;
      if (w.namespace !== (e.object.metadata.namespace ?? "")) continue;
      if (!matches(e.object, w.labels, w.fields)) continue;
      emit(e.type, e.object, w);
    }
  };

  const fake = {
    url: "",
    ca: FAKE_APISERVER_CA,
    tokens: new Set(options.tokens ?? ["fake-admin-token"]),
    reviews: new Map<string, FakeTokenReview>(),
    allowTokenReviews: true,
    grants: new Map<string, string[]>(),
    endWatchesAtOnce: false,
    requests: [] as string[],
    get resourceVersion() {
      return rv;
    },
    get watches() {
      return watchers.size;
    },
    apply(object: KubeObject): KubeObject {
      const r = byKind.get(object.kind);
      if (!r) throw new Error(`fake-kube-apiserver: unknown kind ${object.kind}`);
      const ns = r.cluster ? "" : (object.metadata.namespace ?? "default");
      const k = key(object.kind, ns, object.metadata.name);
      const old = store.get(k);
      rv++;
      const stored: KubeObject = structuredClone({
        ...object,
        apiVersion: apiVersionOf(r),
        metadata: {
          ...object.metadata,
          ...(r.cluster ? {} : { namespace: ns }),
          uid: old?.metadata.uid ?? randomUUID(),
          resourceVersion: String(rv),
          creationTimestamp: old?.metadata.creationTimestamp ?? new Date().toISOString(),
        },
      });
      store.set(k, stored);
      publish({ rv, type: old ? "MODIFIED" : "ADDED", object: stored });
      return stored;
    },
    remove(kind: string, namespace: string, name: string) {
      const k = key(kind, byKind.get(kind)?.cluster ? "" : namespace, name);
      const old = store.get(k);
      if (!old) return;
      store.delete(k);
      rv++;
      const gone = structuredClone(old);
      gone.metadata.resourceVersion = String(rv);
      publish({ rv, type: "DELETED", object: gone });
    },
    compact() {
      compactedAt = rv;
      history.length = 0;
    },
    bookmark() {
      for (const w of watchers) {
        if (!w.bookmarks) continue;
        emit(
          "BOOKMARK",
          {
            kind: w.resource.kind,
            apiVersion: apiVersionOf(w.resource),
            metadata: { resourceVersion: String(rv) },
          },
          w,
        );
      }
    },
    dropWatches() {
      for (const w of watchers) w.res.socket?.destroy();
    },
    holdLists() {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      listGate = gate;
      return () => {
        if (listGate === gate) listGate = undefined;
        open();
      };
    },
    waitForRequest(match: (r: string) => boolean) {
      const seen = fake.requests.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve) => requestWaiters.push({ match, resolve }));
    },
    waitForWatches(n: number) {
      if (watchers.size === n) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ n, resolve }));
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      });
    },
    writeKubeconfig(path: string, token: string, namespace = "default") {
      const ca = Buffer.from(FAKE_APISERVER_CA).toString("base64");
      writeFileSync(
        path,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [
            { name: "fake", cluster: { server: fake.url, "certificate-authority-data": ca } },
          ],
          users: [{ name: "fake", user: { token } }],
          contexts: [{ name: "fake", context: { cluster: "fake", user: "fake", namespace } }],
          "current-context": "fake",
        }),
      );
    },
    close: async () => {
      await fake.stop();
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const line = `${req.method} ${req.url}`;
    fake.requests.push(line);
    for (const w of [...requestWaiters])
      if (w.match(line)) {
        requestWaiters.splice(requestWaiters.indexOf(w), 1);
        w.resolve(line);
      }
    const url = new URL(req.url ?? "/", "https://fake");
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (!auth || !fake.tokens.has(auth))
      return json(res, 401, status(401, "Unauthorized", "Unauthorized"));
    const path = url.pathname.replace(/\/+$/, "");
    // Legacy discovery, as kubectl reads it (it falls back from aggregated discovery).
    if (path === "/api") return json(res, 200, { kind: "APIVersions", versions: ["v1"] });
    if (path === "/apis") {
      const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
      return json(res, 200, {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: [
          ...groups.map((g) => {
            const v = { groupVersion: `${g}/v1`, version: "v1" };
            return { name: g, versions: [v], preferredVersion: v };
          }),
          ...["authentication.k8s.io", "authorization.k8s.io"].map((g) => {
            const v = { groupVersion: `${g}/v1`, version: "v1" };
            return { name: g, versions: [v], preferredVersion: v };
          }),
        ],
      });
    }
    const discovery = /^\/(?:api\/v1|apis\/([^/]+)\/v1)$/.exec(path);
    if (discovery) {
      const group = discovery[1] ?? "";
      return json(res, 200, {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: group ? `${group}/v1` : "v1",
        resources: resourceList(RESOURCES.filter((r) => r.group === group)),
      });
    }
    if (req.method === "POST") return review(path, req, res);
    // Cluster-scoped: /api/v1/namespaces[/name], /apis/<group>/v1/<plural>[/name].
    const c = /^\/(?:api\/v1|apis\/([^/]+)\/v1)\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    const clusterResource =
      c && RESOURCES.find((r) => r.cluster && r.group === (c[1] ?? "") && r.plural === c[2]);
    const m = clusterResource
      ? ([path, c[1], "", c[2], c[3]] as (string | undefined)[])
      : /^\/(?:api\/v1|apis\/([^/]+)\/v1)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    const resource =
      clusterResource ??
      (m && RESOURCES.find((r) => !r.cluster && r.group === (m[1] ?? "") && r.plural === m[3]));
    if (!m || !resource || req.method !== "GET")
      return json(res, 404, status(404, "NotFound", `the server could not find ${path}`));
    const namespace = m[2] as string;
    const labels = parseSelector(url.searchParams.get("labelSelector"));
    const fields = parseSelector(url.searchParams.get("fieldSelector"));
    if (m[4]) fields["metadata.name"] = m[4];
    const watch = url.searchParams.get("watch");
    if (watch !== "1" && watch !== "true" && !m[4] && listGate !== undefined) await listGate;
    const current = [...store.values()].filter(
      (o) =>
        o.kind === resource.kind &&
        (o.metadata.namespace ?? "") === namespace &&
        matches(o, labels, fields),
    );
    if (watch !== "1" && watch !== "true") {
      if (m[4]) {
        const one = current[0];
        if (!one)
          return json(res, 404, status(404, "NotFound", `${resource.plural} "${m[4]}" not found`));
        return json(res, 200, one);
      }
      return json(res, 200, {
        kind: `${resource.kind}List`,
        apiVersion: apiVersionOf(resource),
        metadata: { resourceVersion: String(rv) },
        items: current,
      });
    }
    // A watch: HTTP 200, then one JSON event per line, chunked, until the client leaves.
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    const w: Watcher = {
      resource,
      namespace,
      labels,
      fields,
      bookmarks: url.searchParams.get("allowWatchBookmarks") === "true",
      res,
    };
    const from = url.searchParams.get("resourceVersion");
    if (from === null || from === "" || from === "0") {
      for (const o of current) emit("ADDED", o, w);
    } else if (Number(from) < compactedAt) {
      emit(
        "ERROR",
        status(410, "Expired", `too old resource version: ${from} (${compactedAt})`),
        w,
      );
      res.end();
      return;
    } else {
      for (const e of history) {
        if (e.rv <= Number(from)) continue;
        if (e.object.kind !== resource.kind || (e.object.metadata.namespace ?? "") !== namespace)
          continue;
        if (matches(e.object, labels, fields)) emit(e.type, e.object, w);
      }
    }
    if (fake.endWatchesAtOnce) {
      res.end();
      return;
    }
    watchers.add(w);
    notifyWaiters();
    res.on("close", () => {
      watchers.delete(w);
      notifyWaiters();
    });
  };

  const review = async (path: string, req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: KubeObject;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return json(res, 400, status(400, "BadRequest", "the body is not JSON"));
    }
    if (path === "/apis/authentication.k8s.io/v1/tokenreviews") {
      if (body.kind !== "TokenReview" || typeof body.spec?.token !== "string")
        return json(res, 400, status(400, "BadRequest", "expected a TokenReview with spec.token"));
      const who = fake.reviews.get(body.spec.token);
      const wanted: string[] = body.spec.audiences ?? [];
      const ok = who !== undefined && wanted.every((a) => (who.audiences ?? wanted).includes(a));
      return json(res, 201, {
        kind: "TokenReview",
        apiVersion: "authentication.k8s.io/v1",
        metadata: { creationTimestamp: null },
        spec: body.spec,
        status: ok
          ? {
              authenticated: true,
              user: {
                username: who.username,
                uid: who.uid ?? randomUUID(),
                groups: who.groups ?? [],
              },
              audiences: wanted.length ? wanted : (who.audiences ?? []),
            }
          : {
              authenticated: false,
              user: {},
              error: who
                ? "token audiences are invalid for the target audiences"
                : "invalid bearer token",
            },
      });
    }
    if (path === "/apis/authorization.k8s.io/v1/subjectaccessreviews") {
      const attrs = body.spec?.resourceAttributes ?? {};
      const want = `${attrs.verb} ${attrs.group ?? ""}/${attrs.resource}`;
      // Grants to the user or to any of its groups (a RoleBinding to system:serviceaccounts:NS).
      const granted = [body.spec?.user ?? "", ...(body.spec?.groups ?? [])].flatMap(
        (who: string) => fake.grants.get(who) ?? [],
      );
      const allowed = granted.includes(want) || granted.includes("*");
      return json(res, 201, accessReview("SubjectAccessReview", body.spec, allowed));
    }
    if (path === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
      const attrs = body.spec?.resourceAttributes ?? {};
      const allowed =
        fake.allowTokenReviews &&
        attrs.group === "authentication.k8s.io" &&
        attrs.resource === "tokenreviews" &&
        attrs.verb === "create";
      return json(res, 201, accessReview("SelfSubjectAccessReview", body.spec, allowed));
    }
    return json(res, 404, status(404, "NotFound", `the server could not find ${path}`));
  };

  const server: Server = createServer({ cert: FAKE_APISERVER_CA, key: KEY }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, 500, status(500, "InternalError", err.message));
      else res.destroy();
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  fake.url = `https://127.0.0.1:${port}`;
  return fake;
}

/** An EndpointSlice as the EndpointSlice controller writes it. */
export function endpointSlice(o: {
  namespace?: string;
  service: string;
  name?: string;
  ports: { name?: string; port: number; appProtocol?: string }[];
  endpoints: {
    ip: string;
    ready?: boolean;
    serving?: boolean;
    terminating?: boolean;
    zone?: string;
    forZones?: string[];
    pod?: string;
    nodeName?: string;
  }[];
}): KubeObject {
  return {
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
    metadata: {
      name: o.name ?? `${o.service}-abcde`,
      namespace: o.namespace ?? "default",
      labels: {
        "kubernetes.io/service-name": o.service,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
      },
      ownerReferences: [{ apiVersion: "v1", kind: "Service", name: o.service, uid: randomUUID() }],
    },
    addressType: o.endpoints.some((e) => e.ip.includes(":")) ? "IPv6" : "IPv4",
    ports: o.ports.map((p) => ({
      name: p.name ?? "",
      port: p.port,
      protocol: "TCP",
      ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
    })),
    endpoints: o.endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
      ...(e.forZones ? { hints: { forZones: e.forZones.map((name) => ({ name })) } } : {}),
      ...(e.pod
        ? {
            targetRef: {
              kind: "Pod",
              namespace: o.namespace ?? "default",
              name: e.pod,
              uid: randomUUID(),
            },
          }
        : {}),
    })),
  };
}

/** A Pod with a service account and labels. */
export function pod(o: {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  serviceAccount?: string;
  ip?: string;
}): KubeObject {
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { name: o.name, namespace: o.namespace ?? "default", labels: o.labels },
    spec: {
      serviceAccountName: o.serviceAccount ?? "default",
      containers: [{ name: "app", image: "registry.example/app:1" }],
    },
    status: { phase: "Running", ...(o.ip ? { podIP: o.ip, podIPs: [{ ip: o.ip }] } : {}) },
  };
}

/** A ClusterIP Service. */
export function service(o: {
  name: string;
  namespace?: string;
  selector: Record<string, string>;
  ports: { name?: string; port: number; targetPort?: number | string; appProtocol?: string }[];
}): KubeObject {
  return {
    kind: "Service",
    apiVersion: "v1",
    metadata: { name: o.name, namespace: o.namespace ?? "default" },
    spec: {
      type: "ClusterIP",
      clusterIP: "10.96.0.10",
      selector: o.selector,
      ports: o.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        protocol: "TCP",
        targetPort: p.targetPort ?? p.port,
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
    },
  };
}
