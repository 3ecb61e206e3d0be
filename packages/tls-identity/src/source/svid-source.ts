import { EventEmitter } from "node:events";
import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import {
  type Clock,
  duration,
  nonEmptyString,
  optionsObject,
  randomOption,
  typeError,
} from "@mesh/core";
import type { TrustBundle } from "../bundle/trust-bundle.js";
import { TrustBundle as Bundle } from "../bundle/trust-bundle.js";
import { systemClock } from "../clock.js";
import { IdentityError } from "../errors.js";
import { publishRefreshFailed, publishSvid } from "../events.js";
import { type IssuerClientOptions, requestSvid } from "../issuer/client.js";
import { decodeX509SvidResponse } from "../workload-api/protobuf.js";
import {
  FETCH_X509_SVID_PATH,
  WorkloadApiWatcher,
  workloadApiSocketFrom,
} from "../workload-api/watcher.js";
import { snapshotFromResponse } from "../workload-api/x509-context.js";
import { X509Svid } from "../x509/svid.js";
import {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  DEFAULT_RENEWAL,
  type RenewalPolicy,
  renewalDelay,
  retryDelay,
} from "./schedule.js";

/** The identity held by a source at one moment. @public */
export interface IdentitySnapshot {
  readonly svid: X509Svid;
  readonly bundle: TrustBundle;
}

/** Timing options shared by every source. @public */
export interface SourceTimingOptions {
  /** Clock for validity and schedule math (ms since epoch). Default `Date.now`. */
  clock?: Clock;
  /** Renew after this fraction of the remaining lifetime. Default 0.7. */
  renewFraction?: number;
  /** Lower clamp of the renewal delay, ms. Default 10 000. */
  minRefreshMs?: number;
  /** Upper clamp of the renewal delay, ms. Default 24 h. */
  maxRefreshMs?: number;
  /** First retry delay after a failure, ms (doubles). Default 1 000. */
  retryInitialMs?: number;
  /** Longest retry delay, ms. Default 30 000. */
  retryMaxMs?: number;
}

/** Options of {@link SvidSource.fromIssuer}. @public */
export interface IssuerSourceOptions extends IssuerClientOptions, SourceTimingOptions {}

/** Options of {@link SvidSource.fromFiles}. @public */
export interface FileSourceOptions extends Omit<SourceTimingOptions, "renewFraction"> {
  /** PEM chain: the SVID leaf first, then intermediates. */
  certFile: string;
  /** PEM private key of the leaf. */
  keyFile: string;
  /** PEM trust bundle (one or more anchors). */
  bundleFile: string;
  /** Also re-read every this many ms, in case file events are missed. Default 30 000. */
  pollIntervalMs?: number;
}

/**
 * Options of {@link SvidSource.fromWorkloadApi}. Of the timing options only `clock`,
 * `retryInitialMs` and `retryMaxMs` apply: the agent pushes new SVIDs, the source only
 * reconnects.
 *
 * @public
 */
export interface WorkloadApiSourceOptions
  extends Pick<SourceTimingOptions, "clock" | "retryInitialMs" | "retryMaxMs"> {
  /**
   * The agent's Workload API socket: a path, `unix:///path` or `unix:path`. Default the
   * `SPIFFE_ENDPOINT_SOCKET` environment variable.
   */
  socket?: string;
  /**
   * Use the SVID with this SPIFFE ID when the agent hands out several. Default the first
   * one (the agent's default SVID).
   */
  spiffeId?: string;
  /** Random source for reconnect jitter (tests). Default `Math.random`. */
  random?: () => number;
}

type Fetch = () => Promise<IdentitySnapshot>;
type SourceKind = "issuer" | "files" | "workload-api";

/**
 * Events of an {@link SvidSource}: `update` with the new {@link IdentitySnapshot} each
 * time a new SVID or bundle is in use; `refresh-failed` with `{ error, retryInMs }` when
 * obtaining one failed (the current one stays in use).
 *
 * @public
 */
export interface SvidSourceEvents {
  update: [IdentitySnapshot];
  "refresh-failed": [{ error: Error; retryInMs: number }];
}

/**
 * Holds the current X.509-SVID and trust bundle and keeps them fresh: from an issuer
 * (generate a key, send a CSR, renew at 70 % of the lifetime, retry with backoff while the
 * old SVID is still valid) or from PEM files (watched and hot-reloaded). Pass it to
 * {@link secureServer}, {@link clientTlsOptions} or {@link undiciConnector}; they read
 * `svid` and `bundle` when a new connection starts.
 *
 * Also publishes `mesh:identity:svid` and `mesh:identity:refresh-failed`.
 *
 * @public
 */
export class SvidSource extends EventEmitter<SvidSourceEvents> {
  readonly #fetch: Fetch;
  readonly #kind: SourceKind;
  readonly #clock: Clock;
  readonly #renewal: RenewalPolicy;
  readonly #backoff: BackoffPolicy;
  readonly #fixedInterval: number | undefined;
  #current: IdentitySnapshot | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;
  #inflight: Promise<void> | undefined;
  #readyWaiters: Array<{ resolve: (s: IdentitySnapshot) => void; reject: (e: Error) => void }> = [];
  #watcher: FSWatcher | undefined;
  #nextRefreshAt: number | undefined;
  #stopStream: (() => void) | undefined;
  #federated: ReadonlyMap<string, TrustBundle> = new Map();

  private constructor(
    kind: SourceKind,
    fetch: Fetch,
    timing: SourceTimingOptions,
    fixedInterval?: number,
  ) {
    super();
    this.#kind = kind;
    this.#fetch = fetch;
    const t = optionsObject("options", timing);
    this.#clock = t.clock ?? systemClock;
    const fraction = t.renewFraction ?? DEFAULT_RENEWAL.fraction;
    if (typeof fraction !== "number" || !(fraction > 0 && fraction < 1))
      throw new RangeError(
        `options.renewFraction: expected a number in (0, 1), got ${String(fraction)}`,
      );
    const minDelayMs = duration(
      "options.minRefreshMs",
      t.minRefreshMs,
      DEFAULT_RENEWAL.minDelayMs,
      1,
      Number.MAX_SAFE_INTEGER,
    );
    const maxDelayMs = duration(
      "options.maxRefreshMs",
      t.maxRefreshMs,
      DEFAULT_RENEWAL.maxDelayMs,
      minDelayMs,
      Number.MAX_SAFE_INTEGER,
    );
    this.#renewal = { fraction, minDelayMs, maxDelayMs };
    this.#backoff = {
      initialMs: duration(
        "options.retryInitialMs",
        t.retryInitialMs,
        DEFAULT_BACKOFF.initialMs,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
      maxMs: duration(
        "options.retryMaxMs",
        t.retryMaxMs,
        DEFAULT_BACKOFF.maxMs,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
    };
    this.#fixedInterval = fixedInterval;
  }

  /**
   * A source that obtains its SVID from an issuer service with the CSR flow and renews it.
   * Starts fetching immediately; await {@link SvidSource.ready}.
   */
  static fromIssuer(options: IssuerSourceOptions): SvidSource {
    const o = optionsObject("options", options);
    nonEmptyString("options.url", o.url);
    if (o.spiffeId === undefined)
      throw typeError("options.spiffeId", "the SPIFFE ID to request", o.spiffeId);
    if (o.token === undefined && o.tokenFile === undefined)
      throw typeError("options.token", "a token or options.tokenFile", undefined);
    const client: IssuerClientOptions = { ...(o as IssuerClientOptions) };
    const source = new SvidSource("issuer", () => requestSvid(client), o);
    source.#refresh();
    return source;
  }

  /**
   * A source that reads an SVID, key and bundle from PEM files and reloads them when they
   * change (written by cert-manager, a SPIRE agent helper, `mesh-identity issue`, ...).
   * A half-written set is retried, never half-applied.
   */
  static fromFiles(options: FileSourceOptions): SvidSource {
    const o = optionsObject("options", options);
    const certFile = nonEmptyString("options.certFile", o.certFile);
    const keyFile = nonEmptyString("options.keyFile", o.keyFile);
    const bundleFile = nonEmptyString("options.bundleFile", o.bundleFile);
    const poll = duration(
      "options.pollIntervalMs",
      o.pollIntervalMs,
      30_000,
      1,
      Number.MAX_SAFE_INTEGER,
    );
    const load: Fetch = async () => {
      const read = await Promise.allSettled([
        readFile(certFile),
        readFile(keyFile),
        readFile(bundleFile),
      ]);
      // Report the first unreadable file in a fixed order (certificate, key, bundle), not
      // whichever read happened to fail first.
      for (const r of read) if (r.status === "rejected") throw r.reason;
      const [cert, key, bundle] = read.map((r) => (r as PromiseFulfilledResult<Buffer>).value) as [
        Buffer,
        Buffer,
        Buffer,
      ];
      return { svid: X509Svid.fromPem(cert, key), bundle: Bundle.fromPem(bundle) };
    };
    const source = new SvidSource("files", load, o, poll);
    const files = new Set([basename(certFile), basename(keyFile), basename(bundleFile)]);
    const dirs = new Set([dirname(certFile), dirname(keyFile), dirname(bundleFile)]);
    // Watch the directories (atomic renames and Kubernetes' symlink swaps replace the inode).
    if (dirs.size === 1) {
      let debounce: NodeJS.Timeout | undefined;
      try {
        source.#watcher = watch([...dirs][0] as string, { persistent: false }, (_event, name) => {
          if (name !== null && !files.has(name.toString()) && !name.toString().startsWith(".."))
            return;
          clearTimeout(debounce);
          debounce = setTimeout(() => source.#refresh(), 50);
          debounce.unref();
        });
        source.#watcher.on("error", () => {});
      } catch {
        // No watcher support: polling alone still reloads.
      }
    }
    source.#refresh();
    return source;
  }

  /**
   * A source fed by a SPIFFE Workload API (a SPIRE agent): keeps a `FetchX509SVID` stream
   * open on the agent's Unix socket and applies every response as it arrives — new SVID and
   * bundle, without dropping connections. A response that fails the X.509-SVID checks is
   * reported (`refresh-failed`, `retryInMs` 0: the stream stays open) and the last good SVID
   * stays in use. When the stream ends or fails it reconnects after a backoff
   * (`retryInitialMs` doubling to `retryMaxMs`, jittered), which the next good response
   * resets. Await {@link SvidSource.ready}.
   *
   * @param options the socket (path or `unix://` URL) or options; default
   *   `SPIFFE_ENDPOINT_SOCKET`.
   * @throws TypeError `options.socket: expected ...` when no usable socket is named.
   */
  static fromWorkloadApi(options?: string | WorkloadApiSourceOptions): SvidSource {
    const o = typeof options === "string" ? { socket: options } : optionsObject("options", options);
    const socketPath = workloadApiSocketFrom(o.socket);
    if (o.spiffeId !== undefined) nonEmptyString("options.spiffeId", o.spiffeId);
    const random = randomOption("options.random", o.random);
    const source: SvidSource = new SvidSource(
      "workload-api",
      (): Promise<IdentitySnapshot> => source.ready(), // the agent pushes; nothing to fetch
      o,
    );
    const spiffeId = o.spiffeId;
    const watcher = new WorkloadApiWatcher({
      socketPath,
      path: FETCH_X509_SVID_PATH,
      parse: (bytes) => snapshotFromResponse(decodeX509SvidResponse(bytes), spiffeId),
      backoff: source.#backoff,
      random,
      remaining: () => (source.#current?.svid.notAfter ?? 0) - source.#clock.now(),
      onUpdate: (context) => {
        if (source.#closed) return;
        source.#nextRefreshAt = undefined; // connected: the agent pushes, nothing is scheduled
        source.#federated = context.federatedBundles;
        const cur = source.#current;
        if (
          !cur ||
          cur.svid.serialNumber !== context.svid.serialNumber ||
          cur.bundle.pem !== context.bundle.pem
        )
          source.#apply({ svid: context.svid, bundle: context.bundle });
      },
      onError: (error, retryInMs) => {
        if (source.#closed) return;
        source.#nextRefreshAt = retryInMs > 0 ? source.#clock.now() + retryInMs : undefined;
        const spiffeId = source.#current?.svid.spiffeId.toString() ?? "";
        publishRefreshFailed({ spiffeId, error, retryInMs });
        source.emit("refresh-failed", { error, retryInMs });
      },
    });
    source.#stopStream = () => watcher.close();
    watcher.start();
    return source;
  }

  /**
   * Trust bundles of other trust domains, by trust domain name, as the Workload API sent
   * them (`federated_bundles`); empty for other sources.
   */
  get federatedBundles(): ReadonlyMap<string, TrustBundle> {
    return this.#federated;
  }

  /** A source holding fixed material that never changes (tests, static setups). */
  static fromSvid(svid: X509Svid, bundle: TrustBundle): SvidSource {
    const source = new SvidSource("files", () => Promise.resolve({ svid, bundle }), {});
    source.#apply({ svid, bundle });
    return source;
  }

  /** Resolves with the first snapshot; rejects if the source is closed first. */
  ready(): Promise<IdentitySnapshot> {
    if (this.#current) return Promise.resolve(this.#current);
    if (this.#closed)
      return Promise.reject(
        new IdentityError("MESH_IDENTITY_SOURCE_CLOSED", "the SVID source is closed"),
      );
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /**
   * The current SVID.
   *
   * @throws IdentityError `MESH_IDENTITY_NOT_READY` before the first one arrived.
   */
  get svid(): X509Svid {
    return this.#snapshot().svid;
  }

  /** The current trust bundle. @throws IdentityError `MESH_IDENTITY_NOT_READY`. */
  get bundle(): TrustBundle {
    return this.#snapshot().bundle;
  }

  /** The current snapshot, or `undefined` before the first one. */
  get current(): IdentitySnapshot | undefined {
    return this.#current;
  }

  /** When the current SVID expires (ms since epoch), for metrics; `undefined` if none. */
  get expiresAt(): number | undefined {
    return this.#current?.svid.notAfter;
  }

  /** When the next renewal or retry is scheduled (ms since epoch), if any. */
  get nextRefreshAt(): number | undefined {
    return this.#nextRefreshAt;
  }

  /** Readiness: an SVID is held and valid at the clock's current time. */
  isReady(): boolean {
    const c = this.#current;
    if (!c) return false;
    const now = this.#clock.now();
    return now >= c.svid.notBefore && now < c.svid.notAfter;
  }

  /**
   * Renews now (outside the schedule); resolves when the attempt finished. A Workload API
   * source has nothing to renew (the agent pushes) and resolves at once.
   */
  refreshNow(): Promise<void> {
    if (this.#kind === "workload-api") return Promise.resolve();
    return this.#refresh();
  }

  /** Stops timers and watchers. The current SVID stays readable. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#stopStream?.();
    const err = new IdentityError("MESH_IDENTITY_SOURCE_CLOSED", "the SVID source is closed");
    for (const w of this.#readyWaiters.splice(0)) w.reject(err);
  }

  #snapshot(): IdentitySnapshot {
    if (!this.#current)
      throw new IdentityError(
        "MESH_IDENTITY_NOT_READY",
        "the SVID source has no SVID yet; await source.ready()",
      );
    return this.#current;
  }

  #refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#inflight) return this.#inflight;
    clearTimeout(this.#timer);
    this.#inflight = this.#fetch()
      .then(
        (next) => {
          if (this.#closed) return;
          this.#failures = 0;
          const cur = this.#current;
          const changed =
            !cur ||
            cur.svid.serialNumber !== next.svid.serialNumber ||
            cur.bundle.pem !== next.bundle.pem;
          if (changed) this.#apply(next);
          this.#schedule(
            this.#fixedInterval ??
              renewalDelay(this.#clock.now(), next.svid.notAfter, this.#renewal),
          );
        },
        (error: Error) => {
          if (this.#closed) return;
          const remaining = (this.#current?.svid.notAfter ?? 0) - this.#clock.now();
          const retryInMs = retryDelay(this.#failures++, this.#backoff, remaining);
          this.#schedule(retryInMs);
          const spiffeId = this.#current?.svid.spiffeId.toString() ?? "";
          publishRefreshFailed({ spiffeId, error, retryInMs });
          this.emit("refresh-failed", { error, retryInMs });
        },
      )
      .finally(() => {
        this.#inflight = undefined;
      });
    return this.#inflight;
  }

  #schedule(delay: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#nextRefreshAt = this.#clock.now() + delay;
    this.#timer = setTimeout(() => void this.#refresh(), delay);
    this.#timer.unref();
  }

  #apply(next: IdentitySnapshot): void {
    this.#current = next;
    const { svid } = next;
    publishSvid(() => ({
      spiffeId: svid.spiffeId.toString(),
      notBefore: svid.notBefore,
      notAfter: svid.notAfter,
      serialNumber: svid.serialNumber,
      source: this.#kind,
    }));
    for (const w of this.#readyWaiters.splice(0)) w.resolve(next);
    this.emit("update", next);
  }
}
