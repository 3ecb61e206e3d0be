import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import {
  type IdentitySnapshot,
  parseSpiffeId,
  parseTrustDomain,
  type SourceTimingOptions,
  SvidSource,
  type TrustBundle,
  type X509Svid,
} from "@mesh/tls-identity";
import { MeshTlsError } from "./errors.js";

/**
 * The `identity` section of the proxy config. Exactly one of `issuer`, `files` and
 * `workloadApi`.
 *
 * @public
 */
export interface IdentityConfig {
  /** This workload's trust domain, e.g. `example.org`. */
  trustDomain: string;
  /** This workload's SPIFFE ID; must be in `trustDomain`. */
  id: string;
  /** Get SVIDs from an issuer with a CSR and a bearer token (re-read per request). */
  issuer?: {
    url: string;
    tokenFile: string;
    /**
     * PEM CA that verifies an `https:` issuer's certificate. Read at start (a missing file
     * fails the start) and again for each request to the issuer, so a rotated file applies
     * to the next renewal.
     */
    bundleFile?: string;
  };
  /** Read the SVID, key and bundle from PEM files, watched and reloaded. */
  files?: { cert: string; key: string; bundle: string };
  /**
   * Take SVIDs from a SPIFFE Workload API (a SPIRE agent) on a Unix socket: a path (relative
   * to the config file) or `unix:///absolute/path`. The SVID for `id` is used when the
   * agent hands out several.
   */
  workloadApi?: { socket: string };
}

/** Where a {@link MeshIdentity}'s SVIDs come from. @public */
export type IdentitySourceKind = "issuer" | "files" | "workload-api";

/** Options of {@link createIdentity}. @public */
export interface CreateIdentityOptions {
  /** Config path of the section, for error messages. Default `identity`. */
  path?: string;
  /** Directory that relative file paths are resolved against (the config file's). Default cwd. */
  baseDir?: string;
  /** Renewal/retry timing and clock, passed to the `SvidSource`. */
  timing?: SourceTimingOptions;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);
const show = (v: unknown) => (v === undefined ? "nothing" : (JSON.stringify(v) ?? String(v)));

function str(obj: Record<string, unknown>, key: string, at: string): string {
  const v = obj[key];
  if (typeof v !== "string" || v.length === 0)
    throw new TypeError(`${at}.${key}: expected a non-empty string, got ${show(v)}`);
  return v;
}

/**
 * The proxy's workload identity: an {@link SvidSource} plus what the proxy reports about
 * it (readiness, expiry, refresh counters). Pass `identity.source` to
 * {@link InboundTls}, {@link meshConnector} and {@link connectMeshTls}.
 *
 * @public
 */
export class MeshIdentity {
  /** The rotating SVID + bundle (an `IdentityMaterial` that emits `update`). */
  readonly source: SvidSource;
  /** The configured trust domain. */
  readonly trustDomain: string;
  /** The configured SPIFFE ID. */
  readonly id: string;
  /** Where SVIDs come from. */
  readonly kind: IdentitySourceKind;
  /**
   * The issuer's URL and, with `bundleFile`, the CA that verifies it (`https:`): a function
   * that reads the file again on each call, for each request to the issuer.
   */
  readonly issuer: { readonly url: string; readonly ca?: () => Promise<Buffer> } | undefined;
  #refreshes = 0;
  #failures = 0;
  #lastError: Error | undefined;

  /** @internal use {@link createIdentity}. */
  constructor(
    source: SvidSource,
    trustDomain: string,
    id: string,
    kind: IdentitySourceKind,
    issuer?: { url: string; ca?: () => Promise<Buffer> },
  ) {
    this.source = source;
    this.issuer = issuer;
    this.trustDomain = trustDomain;
    this.id = id;
    this.kind = kind;
    const onUpdate = (s: IdentitySnapshot) => {
      this.#refreshes++;
      const got = s.svid.spiffeId.toString();
      this.#lastError =
        got === id
          ? undefined
          : new MeshTlsError(
              "MESH_PROXY_IDENTITY_SETUP",
              "wrong identity",
              `the SVID is for ${got}, but identity.id is ${id}`,
            );
    };
    const current = source.current;
    if (current) onUpdate(current);
    source.on("update", onUpdate);
    source.on("refresh-failed", ({ error }) => {
      this.#failures++;
      this.#lastError = error;
    });
  }

  /**
   * Ready when an SVID for the configured ID is held and currently valid. This is what
   * `/ready` should require.
   */
  isReady(): boolean {
    const c = this.source.current;
    return c !== undefined && this.source.isReady() && c.svid.spiffeId.toString() === this.id;
  }

  /** Resolves with the first SVID (rejects if the source is closed first). */
  async ready(): Promise<IdentitySnapshot> {
    return this.source.ready();
  }

  /** The current SVID. @throws IdentityError `MESH_IDENTITY_NOT_READY` before the first one. */
  get svid(): X509Svid {
    return this.source.svid;
  }

  /** The current trust bundle. */
  get bundle(): TrustBundle {
    return this.source.bundle;
  }

  /** Expiry of the current SVID in ms since epoch (for an expiry-timestamp gauge). */
  get expiresAt(): number | undefined {
    return this.source.expiresAt;
  }

  /** How many SVIDs (or bundle changes) have been applied, the first included. */
  get refreshes(): number {
    return this.#refreshes;
  }

  /** How many renewals failed. */
  get refreshFailures(): number {
    return this.#failures;
  }

  /** The last renewal error, or an SVID for the wrong ID; cleared by a good SVID. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  /** Stops renewing and watching. */
  close(): void {
    this.source.close();
  }
}

/**
 * Where `identity.workloadApi.socket` points: a bare path or `unix:path` is relative to the
 * config file's directory (`base`), like identity files; `unix:///abs` and anything else go
 * as given (the source refuses what is not a Unix socket).
 *
 * @public
 */
export function workloadApiAddress(socket: string, base: string): string {
  if (socket.startsWith("unix:") && !socket.startsWith("unix://"))
    return resolve(base, socket.slice("unix:".length));
  if (socket.startsWith("unix://") || /^[a-z][a-z0-9+.-]*:/i.test(socket)) return socket;
  return resolve(base, socket);
}

/**
 * Validates the `identity` config section and starts obtaining an SVID (from the issuer,
 * or from watched files). Resolves once the source is created, not once it is ready:
 * await `identity.ready()` or poll `identity.isReady()` for `/ready`.
 *
 * @throws TypeError `<path>.<field>: expected <what>, got <value>` for bad config;
 *   {@link MeshTlsError} `MESH_PROXY_IDENTITY_SETUP` when `issuer.bundleFile` cannot be read.
 * @public
 */
export async function createIdentity(
  config: unknown,
  options: CreateIdentityOptions = {},
): Promise<MeshIdentity> {
  const at = options.path ?? "identity";
  if (!isObject(config)) throw new TypeError(`${at}: expected an object, got ${show(config)}`);
  const trustDomainText = str(config, "trustDomain", at);
  let trustDomain: string;
  try {
    trustDomain = parseTrustDomain(trustDomainText);
  } catch (err) {
    throw new TypeError(
      `${at}.trustDomain: expected a SPIFFE trust domain, got ${show(trustDomainText)} (${(err as Error).message})`,
    );
  }
  const idText = str(config, "id", at);
  let id: string;
  try {
    const parsed = parseSpiffeId(idText);
    if (parsed.trustDomain !== trustDomain)
      throw new Error(`it is in trust domain ${parsed.trustDomain}, not ${trustDomain}`);
    id = parsed.toString();
  } catch (err) {
    throw new TypeError(
      `${at}.id: expected a SPIFFE ID in ${trustDomain}, got ${show(idText)} (${(err as Error).message})`,
    );
  }
  const given = (["issuer", "files", "workloadApi"] as const).filter(
    (k) => config[k] !== undefined,
  );
  if (given.length !== 1)
    throw new TypeError(
      `${at}: expected exactly one of issuer, files or workloadApi, got ${given.length === 0 ? "none" : given.join(" and ")}`,
    );
  const base = options.baseDir ?? process.cwd();
  const timing = options.timing ?? {};
  if (config.workloadApi !== undefined) {
    const wl = config.workloadApi;
    if (!isObject(wl))
      throw new TypeError(`${at}.workloadApi: expected { socket }, got ${show(wl)}`);
    const socket = str(wl, "socket", `${at}.workloadApi`);
    const address = workloadApiAddress(socket, base);
    let source: SvidSource;
    try {
      source = SvidSource.fromWorkloadApi({
        socket: address,
        spiffeId: id,
        ...(timing.clock ? { clock: timing.clock } : {}),
        ...(timing.retryInitialMs !== undefined ? { retryInitialMs: timing.retryInitialMs } : {}),
        ...(timing.retryMaxMs !== undefined ? { retryMaxMs: timing.retryMaxMs } : {}),
      });
    } catch (err) {
      // The library names its option; name the config field instead.
      throw new TypeError(
        (err as Error).message.replace(/^options\.socket:/, `${at}.workloadApi.socket:`),
      );
    }
    return new MeshIdentity(source, trustDomain, id, "workload-api");
  }
  if (config.issuer !== undefined) {
    const issuer = config.issuer;
    if (!isObject(issuer))
      throw new TypeError(
        `${at}.issuer: expected { url, tokenFile, bundleFile? }, got ${show(issuer)}`,
      );
    const url = str(issuer, "url", `${at}.issuer`);
    if (!/^https?:\/\//.test(url))
      throw new TypeError(`${at}.issuer.url: expected an http(s):// URL, got ${show(url)}`);
    const tokenFile = resolve(base, str(issuer, "tokenFile", `${at}.issuer`));
    let ca: (() => Promise<Buffer>) | undefined;
    if (issuer.bundleFile !== undefined) {
      const bundleFile = resolve(base, str(issuer, "bundleFile", `${at}.issuer`));
      try {
        await readFile(bundleFile);
        // Re-read per request: the issuer's serving certificate may move to a new root.
        ca = () => readFile(bundleFile);
      } catch (err) {
        throw new MeshTlsError(
          "MESH_PROXY_IDENTITY_SETUP",
          "issuer bundle unreadable",
          `${at}.issuer.bundleFile: cannot read ${bundleFile}: ${(err as Error).message}`,
          err,
        );
      }
    }
    const source = SvidSource.fromIssuer({
      url,
      spiffeId: id,
      tokenFile,
      ...(ca ? { ca } : {}),
      ...timing,
    });
    return new MeshIdentity(source, trustDomain, id, "issuer", { url, ...(ca ? { ca } : {}) });
  }
  const files = config.files;
  if (!isObject(files))
    throw new TypeError(`${at}.files: expected { cert, key, bundle }, got ${show(files)}`);
  const source = SvidSource.fromFiles({
    certFile: resolve(base, str(files, "cert", `${at}.files`)),
    keyFile: resolve(base, str(files, "key", `${at}.files`)),
    bundleFile: resolve(base, str(files, "bundle", `${at}.files`)),
    ...timing,
  });
  return new MeshIdentity(source, trustDomain, id, "files");
}
