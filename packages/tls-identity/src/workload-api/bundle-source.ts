import { EventEmitter } from "node:events";
import { duration, optionsObject, randomOption } from "@mesh/core";
import type { TrustBundle } from "../bundle/trust-bundle.js";
import { IdentityError } from "../errors.js";
import { DEFAULT_BACKOFF } from "../source/schedule.js";
import { decodeX509BundlesResponse } from "./protobuf.js";
import { FETCH_X509_BUNDLES_PATH, WorkloadApiWatcher, workloadApiSocketFrom } from "./watcher.js";
import { bundlesFromResponse } from "./x509-context.js";

/** Options of {@link X509BundleSource.fromWorkloadApi}. @public */
export interface X509BundleSourceOptions {
  /** The agent's socket: a path, `unix:///path` or `unix:path`. Default `SPIFFE_ENDPOINT_SOCKET`. */
  socket?: string;
  /** First reconnect delay after the stream ends or fails, ms (doubles). Default 1 000. */
  retryInitialMs?: number;
  /** Longest reconnect delay, ms. Default 30 000. */
  retryMaxMs?: number;
  /** Random source for reconnect jitter (tests). Default `Math.random`. */
  random?: () => number;
}

/**
 * Events of an {@link X509BundleSource}: `update` with every trust bundle by trust domain
 * when a response is applied; `refresh-failed` when a response was refused (`retryInMs` 0,
 * the stream stays open) or the stream failed (reconnecting in `retryInMs`).
 *
 * @public
 */
export interface X509BundleSourceEvents {
  update: [ReadonlyMap<string, TrustBundle>];
  "refresh-failed": [{ error: Error; retryInMs: number }];
}

/**
 * The X.509 trust bundles a SPIFFE Workload API hands out (`FetchX509Bundles`): the
 * workload's own trust domain and those it federates with, kept current from the stream.
 * For workloads that verify peers without holding an SVID; {@link SvidSource} already
 * carries the bundle of its own trust domain. A refused response keeps the last good
 * bundles; a broken stream reconnects with backoff.
 *
 * @public
 */
export class X509BundleSource extends EventEmitter<X509BundleSourceEvents> {
  #bundles: ReadonlyMap<string, TrustBundle> | undefined;
  #waiters: Array<{
    resolve: (b: ReadonlyMap<string, TrustBundle>) => void;
    reject: (e: Error) => void;
  }> = [];
  #closed = false;
  #watcher: WorkloadApiWatcher<Map<string, TrustBundle>> | undefined;

  private constructor() {
    super();
  }

  /**
   * Opens the `FetchX509Bundles` stream on the agent's socket.
   *
   * @throws TypeError naming the option (`options.socket: expected ...`).
   */
  static fromWorkloadApi(options?: string | X509BundleSourceOptions): X509BundleSource {
    const o = typeof options === "string" ? { socket: options } : optionsObject("options", options);
    const socketPath = workloadApiSocketFrom(o.socket);
    const max = Number.MAX_SAFE_INTEGER;
    const backoff = {
      initialMs: duration(
        "options.retryInitialMs",
        o.retryInitialMs,
        DEFAULT_BACKOFF.initialMs,
        1,
        max,
      ),
      maxMs: duration("options.retryMaxMs", o.retryMaxMs, DEFAULT_BACKOFF.maxMs, 1, max),
    };
    const source = new X509BundleSource();
    source.#watcher = new WorkloadApiWatcher({
      socketPath,
      path: FETCH_X509_BUNDLES_PATH,
      parse: (bytes) => bundlesFromResponse(decodeX509BundlesResponse(bytes)),
      backoff,
      random: randomOption("options.random", o.random),
      remaining: () => 0,
      onUpdate: (bundles) => {
        if (source.#closed) return;
        source.#bundles = bundles;
        for (const w of source.#waiters.splice(0)) w.resolve(bundles);
        source.emit("update", bundles);
      },
      onError: (error, retryInMs) => {
        if (!source.#closed) source.emit("refresh-failed", { error, retryInMs });
      },
    });
    source.#watcher.start();
    return source;
  }

  /** Resolves with the first bundles; rejects if the source is closed first. */
  ready(): Promise<ReadonlyMap<string, TrustBundle>> {
    if (this.#bundles) return Promise.resolve(this.#bundles);
    if (this.#closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Every bundle by trust domain name, or `undefined` before the first response. */
  get bundles(): ReadonlyMap<string, TrustBundle> | undefined {
    return this.#bundles;
  }

  /** The bundle of `trustDomain` (a name like `example.org`), if the agent sent one. */
  bundleFor(trustDomain: string): TrustBundle | undefined {
    return this.#bundles?.get(trustDomain);
  }

  /** Ends the stream. The last bundles stay readable. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    for (const w of this.#waiters.splice(0)) w.reject(closedError());
  }
}

function closedError(): IdentityError {
  return new IdentityError("MESH_IDENTITY_SOURCE_CLOSED", "the bundle source is closed");
}
