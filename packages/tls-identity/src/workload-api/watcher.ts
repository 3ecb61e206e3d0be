import { typeError } from "@mesh/core";
import { IdentityError } from "../errors.js";
import { type BackoffPolicy, retryDelay } from "../source/schedule.js";
import { type ServerStreamCall, serverStream } from "./grpc-stream.js";

/** The Workload API's X.509-SVID stream. */
export const FETCH_X509_SVID_PATH = "/SpiffeWorkloadAPI/FetchX509SVID";

/** The Workload API's X.509 bundle stream. */
export const FETCH_X509_BUNDLES_PATH = "/SpiffeWorkloadAPI/FetchX509Bundles";

/** Metadata every Workload API call must carry (the agent refuses calls without it). */
export const WORKLOAD_API_METADATA = { "workload.spiffe.io": "true" } as const;

/**
 * Turns a Workload API address into a socket path: `unix:///run/spire/agent.sock`,
 * `unix:/run/spire/agent.sock` (the forms `SPIFFE_ENDPOINT_SOCKET` takes) or a bare path.
 *
 * @throws TypeError naming `path` for an empty value or a `tcp:` address (not supported).
 */
export function workloadApiSocketPath(address: string, path: string): string {
  if (typeof address !== "string" || address.length === 0)
    throw typeError(path, "a Unix socket path or unix:// URL", address);
  if (address.startsWith("unix://")) {
    const p = address.slice("unix://".length);
    if (!p.startsWith("/")) throw typeError(path, "unix:///absolute/path", address);
    return p;
  }
  if (address.startsWith("unix:")) return address.slice("unix:".length);
  if (/^[a-z][a-z0-9+.-]*:/i.test(address) && !address.startsWith("/"))
    throw typeError(path, "a Unix socket path or unix:// URL (tcp is not supported)", address);
  return address;
}

/**
 * The socket path from `options.socket`, or from `SPIFFE_ENDPOINT_SOCKET` when that is not
 * given; errors name whichever was used.
 */
export function workloadApiSocketFrom(socket: string | undefined): string {
  if (socket !== undefined) return workloadApiSocketPath(socket, "options.socket");
  return workloadApiSocketPath(
    process.env.SPIFFE_ENDPOINT_SOCKET as string,
    "SPIFFE_ENDPOINT_SOCKET (options.socket not given)",
  );
}

/** Callbacks and settings of {@link WorkloadApiWatcher}. */
export interface WorkloadApiWatcherOptions<T> {
  socketPath: string;
  /** The server-streaming method, e.g. {@link FETCH_X509_SVID_PATH}; its request is empty. */
  path: string;
  /** Decodes and validates one response; throws an `IdentityError` naming the bad field. */
  parse(message: Buffer): T;
  backoff: BackoffPolicy;
  /** Random source for retry jitter. Default `Math.random`. */
  random?: () => number;
  /** Milliseconds the current SVID has left, to pull retries in while it is still valid. */
  remaining(): number;
  onUpdate(value: T): void;
  /** A response was rejected or the stream failed; `retryInMs` is 0 when the stream stays open. */
  onError(error: IdentityError, retryInMs: number): void;
}

/**
 * Keeps a Workload API stream (`FetchX509SVID`, `FetchX509Bundles`) open: every response is
 * validated and handed to `onUpdate`; a response that fails validation is reported and skipped (the stream stays
 * open and the last good SVID stays in use, as go-spiffe does); when the stream ends or
 * fails it is opened again after an exponential backoff, reset by the next good response.
 */
export class WorkloadApiWatcher<T> {
  readonly #o: WorkloadApiWatcherOptions<T>;
  #call: ServerStreamCall | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;

  constructor(options: WorkloadApiWatcherOptions<T>) {
    this.#o = options;
  }

  /** Opens the stream (again, when one is open it is replaced). */
  start(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#call?.cancel();
    const o = this.#o;
    this.#call = serverStream({
      socketPath: o.socketPath,
      path: o.path,
      request: new Uint8Array(0), // X509SVIDRequest and X509BundlesRequest have no fields
      metadata: WORKLOAD_API_METADATA,
      onMessage: (bytes) => {
        if (this.#closed) return;
        let value: T;
        try {
          value = o.parse(bytes);
        } catch (err) {
          o.onError(err as IdentityError, 0);
          return;
        }
        this.#failures = 0;
        o.onUpdate(value);
      },
      onEnd: ({ error }) => {
        this.#call = undefined;
        if (this.#closed) return;
        const delay = retryDelay(this.#failures++, o.backoff, o.remaining(), o.random);
        this.#timer = setTimeout(() => this.start(), delay);
        this.#timer.unref();
        o.onError(
          error ??
            new IdentityError(
              "MESH_IDENTITY_WORKLOAD_API_UNAVAILABLE",
              `Workload API at ${o.socketPath}: the agent ended the stream`,
            ),
          delay,
        );
      },
    });
  }

  /** Ends the stream and any scheduled reconnect. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#call?.cancel();
    this.#call = undefined;
  }
}
