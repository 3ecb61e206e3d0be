import { readFile } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { inClusterServer, SERVICE_ACCOUNT_DIR, serviceAccountFiles, typeError } from "@mesh/core";
import { KubeApiError } from "../errors.js";

/**
 * How to reach a Kubernetes API server. {@link inClusterKubeApi} and {@link kubeconfigKubeApi}
 * build one; tests pass their own.
 */
export interface KubeApiConfig {
  /** Base URL, e.g. `https://10.96.0.1:443`. */
  server: string;
  /** PEM CA bundle that verifies the server. */
  ca?: string | Buffer;
  /** Client certificate and key (kubeconfig users with certificates). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** A fixed bearer token. */
  token?: string;
  /**
   * A file holding the bearer token, read again before every request: kubelet rotates the
   * projected service-account token in place (about hourly), and the next request (a relist,
   * a re-watch) then carries the new one.
   */
  tokenFile?: string;
  /** Extra headers on every request (e.g. `Authorization` from a kubeconfig auth plugin). */
  headers?: Record<string, string>;
  /** `false` skips verifying the server (kubeconfig `insecure-skip-tls-verify`). Default true. */
  rejectUnauthorized?: boolean;
  /** Server name for TLS (kubeconfig `tls-server-name`). */
  servername?: string;
}

/** Where Kubernetes mounts a pod's service-account credentials (the convention lives in @mesh/core). */
export { SERVICE_ACCOUNT_DIR };

/**
 * The in-cluster API server config: `KUBERNETES_SERVICE_HOST`/`_PORT` from the environment, the
 * service account's CA (`ca.crt`) and token file (`token`, re-read per request) from `dir`.
 *
 * @throws TypeError when the environment is not a pod's, naming the missing variable or file.
 */
export async function inClusterKubeApi(
  options: { dir?: string; env?: Record<string, string | undefined> } = {},
): Promise<KubeApiConfig> {
  const env = options.env ?? process.env;
  const server = inClusterServer(env);
  if (server === undefined)
    throw typeError(
      "KUBERNETES_SERVICE_HOST",
      "the API server address (in a pod)",
      env.KUBERNETES_SERVICE_HOST,
    );
  const { caFile, tokenFile } = serviceAccountFiles(options.dir);
  let ca: Buffer;
  try {
    ca = await readFile(caFile);
  } catch (err) {
    throw typeError(caFile, "the service account CA", (err as Error).message);
  }
  return { server, ca, tokenFile };
}

/**
 * The API server config of a kubeconfig context (for development outside a cluster), loaded
 * with `@kubernetes/client-node`'s `KubeConfig` so every kubeconfig form it knows works (CA
 * data or files, client certificates, tokens, token files, exec and auth-provider plugins).
 * `path` defaults to `$KUBECONFIG`, then `~/.kube/config`; `context` to the current context.
 * `@kubernetes/client-node` is an optional peer dependency: install it to use this.
 */
export async function kubeconfigKubeApi(
  options: { path?: string; context?: string } = {},
): Promise<KubeApiConfig> {
  const path =
    options.path ?? process.env.KUBECONFIG?.split(":")[0] ?? join(homedir(), ".kube", "config");
  let k8s: typeof import("@kubernetes/client-node");
  try {
    k8s = await import("@kubernetes/client-node");
  } catch (err) {
    throw new KubeApiError(
      `kubeconfig ${path}`,
      0,
      "MissingDependency",
      `reading a kubeconfig needs @kubernetes/client-node (npm install @kubernetes/client-node): ${(err as Error).message}`,
    );
  }
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(path);
    if (options.context !== undefined) kc.setCurrentContext(options.context);
  } catch (err) {
    throw new KubeApiError(`kubeconfig ${path}`, 0, "BadKubeconfig", (err as Error).message);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new KubeApiError(
      `kubeconfig ${path}`,
      0,
      "BadKubeconfig",
      `context ${JSON.stringify(kc.getCurrentContext())} names no cluster`,
    );
  const opts: RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const config: KubeApiConfig = { server: cluster.server };
  if (opts.ca) config.ca = opts.ca as string | Buffer;
  if (opts.cert) config.cert = opts.cert as string | Buffer;
  if (opts.key) config.key = opts.key as string | Buffer;
  if (opts.rejectUnauthorized === false) config.rejectUnauthorized = false;
  if (opts.servername) config.servername = opts.servername;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {}))
    if (typeof v === "string") headers[k.toLowerCase()] = v;
  if (Object.keys(headers).length > 0) config.headers = headers;
  return config;
}

/** The API server config for here: in-cluster inside a pod, else the kubeconfig. */
export async function defaultKubeApi(
  options: { kubeconfig?: string; context?: string } = {},
): Promise<KubeApiConfig> {
  if (options.kubeconfig === undefined && process.env.KUBERNETES_SERVICE_HOST)
    return inClusterKubeApi();
  return kubeconfigKubeApi({
    ...(options.kubeconfig !== undefined ? { path: options.kubeconfig } : {}),
    ...(options.context !== undefined ? { context: options.context } : {}),
  });
}

/** A `metav1.Status` as the API server sends it with errors. */
interface KubeStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** One event of a watch stream. */
export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/** A running watch request. */
export interface WatchStream {
  /** Resolves when the server ends the stream; rejects on an HTTP error or a dropped connection. */
  readonly done: Promise<void>;
  /** Ends the stream from this side (`done` then resolves). */
  abort(): void;
}

/**
 * A minimal Kubernetes API client over `node:https`: JSON requests and watch streams (one JSON
 * event per line), bearer token re-read from `tokenFile` per request. Not a general client:
 * it does what discovery needs, with errors naming the path and the server's `Status`.
 */
export class KubeApiClient {
  readonly #load: (() => Promise<KubeApiConfig>) | undefined;
  #config: KubeApiConfig | undefined;

  /**
   * @param config the API server, or a function loading it (e.g. `() => defaultKubeApi()`),
   *   called at the first request and again after it failed, so a kubeconfig or service
   *   account that is not there yet is retried with the watches' backoff.
   */
  constructor(config: KubeApiConfig | (() => Promise<KubeApiConfig>)) {
    if (typeof config === "function") {
      this.#load = config;
      return;
    }
    this.#config = checkConfig(config);
  }

  async #resolve(): Promise<KubeApiConfig> {
    if (this.#config) return this.#config;
    try {
      this.#config = checkConfig(await (this.#load as () => Promise<KubeApiConfig>)());
    } catch (err) {
      if (err instanceof KubeApiError) throw err;
      throw new KubeApiError("(config)", 0, "BadConfig", (err as Error).message, { cause: err });
    }
    return this.#config;
  }

  async #options(method: string, path: string, body?: string) {
    const c = await this.#resolve();
    const headers: Record<string, string> = { accept: "application/json", ...c.headers };
    const token =
      c.tokenFile !== undefined ? (await readFile(c.tokenFile, "utf8")).trim() : c.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    const url = new URL(path, c.server);
    const tls = url.protocol === "https:";
    return {
      url,
      send: tls ? httpsRequest : httpRequest,
      options: {
        method,
        headers,
        agent: false as const,
        ...(tls
          ? {
              ...(c.ca !== undefined ? { ca: c.ca } : {}),
              ...(c.cert !== undefined ? { cert: c.cert } : {}),
              ...(c.key !== undefined ? { key: c.key } : {}),
              ...(c.servername !== undefined ? { servername: c.servername } : {}),
              rejectUnauthorized: c.rejectUnauthorized ?? true,
            }
          : {}),
      },
    };
  }

  /** Sends a JSON request; resolves with the parsed body of a 2xx answer. @throws KubeApiError */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const { url, send, options } = await this.#options(method, path, text);
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, options, (r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () =>
          resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        r.on("error", reject);
      });
      req.on("error", reject);
      req.end(text);
    }).catch((err: Error) => {
      throw new KubeApiError(path, 0, "Unreachable", err.message, { cause: err });
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch {
      parsed = undefined;
    }
    if (res.status < 200 || res.status > 299) throw statusError(path, res.status, parsed, res.text);
    if (parsed === undefined)
      throw new KubeApiError(path, res.status, "BadResponse", "the body is not JSON");
    return parsed as T;
  }

  /**
   * Opens a watch (`path` carries `?watch=1&resourceVersion=…`) and calls `onEvent` for each
   * event line; `onOpen` once the server answered 200.
   */
  watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, onOpen?: () => void): WatchStream {
    let aborted = false;
    let destroy: (() => void) | undefined;
    const done = (async () => {
      const { url, send, options } = await this.#options("GET", path);
      if (aborted) return;
      await new Promise<void>((resolve, reject) => {
        const req = send(url, options, (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          if (res.statusCode !== 200) {
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              let parsed: unknown;
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = undefined;
              }
              reject(statusError(path, res.statusCode ?? 0, parsed, text));
            });
            res.on("error", reject);
            return;
          }
          onOpen?.();
          let buffered = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            buffered += chunk;
            let nl = buffered.indexOf("\n");
            while (nl >= 0) {
              const line = buffered.slice(0, nl).trim();
              buffered = buffered.slice(nl + 1);
              nl = buffered.indexOf("\n");
              if (!line) continue;
              let event: WatchEvent<T>;
              try {
                event = JSON.parse(line);
              } catch {
                req.destroy(new Error(`a watch event is not JSON: ${line.slice(0, 120)}`));
                return;
              }
              onEvent(event);
            }
          });
          res.on("end", () => resolve());
          res.on("aborted", () => reject(new Error("the watch connection was dropped")));
          res.on("error", (err) =>
            aborted ? resolve() : reject(new Error(`the watch was dropped: ${err.message}`)),
          );
          res.on("close", () => {
            if (aborted || res.complete) resolve();
            else reject(new Error("the watch connection was dropped"));
          });
        });
        destroy = () => req.destroy();
        req.on("error", (err) => (aborted ? resolve() : reject(err)));
        req.end();
      });
    })().catch((err: unknown) => {
      if (aborted) return;
      if (err instanceof KubeApiError) throw err;
      throw new KubeApiError(path, 0, "Unreachable", (err as Error).message, { cause: err });
    });
    return {
      done,
      abort() {
        aborted = true;
        destroy?.();
      },
    };
  }
}

function checkConfig(config: KubeApiConfig): KubeApiConfig {
  if (config === null || typeof config !== "object")
    throw typeError("kubeApi", "an API server config { server, ca, token | tokenFile }", config);
  if (typeof config.server !== "string" || !/^https?:\/\//.test(config.server))
    throw typeError("kubeApi.server", "an http(s):// URL", config.server);
  return config;
}

function statusError(path: string, status: number, parsed: unknown, text: string): KubeApiError {
  const s = parsed as KubeStatus | undefined;
  const message = s?.message ?? text.slice(0, 200);
  return new KubeApiError(path, status, s?.reason ?? `HTTP${status}`, message);
}
