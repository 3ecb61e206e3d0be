import { duration } from "@mesh/core";
import { KubeApiError } from "../errors.js";
import type { Random } from "../random.js";
import type { KubeApiClient, WatchEvent, WatchStream } from "./kube-api.js";

/**
 * Timers a watcher schedules its retries on; injectable so tests drive backoff without
 * waiting (the default uses `setTimeout`, unref'd).
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The default {@link Timers}: real, unref'd timers. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** Reconnect backoff of a watch, in ms: exponential from `minMs` to `maxMs`, half jittered. */
export interface WatchBackoff {
  /** Default 500. */
  minMs?: number;
  /** Default 30 000. */
  maxMs?: number;
}

/** An object with Kubernetes metadata. */
export interface Named {
  metadata: { name: string; resourceVersion?: string };
}

/** Options of a {@link ListWatch}. */
export interface ListWatchOptions<T extends Named> {
  client: KubeApiClient;
  /** Collection path, e.g. `/apis/discovery.k8s.io/v1/namespaces/web/endpointslices`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Called (once per burst of events) with every object, by name, after each change. */
  onChange(items: ReadonlyMap<string, T>): void;
  /** Called when listing or watching failed; the last known objects stay. */
  onError(error: KubeApiError): void;
  backoff?: WatchBackoff;
  timers?: Timers;
  random?: Random;
  /** Server-side watch timeout, seconds (the server then ends the stream; we re-watch). Default 300. */
  watchTimeoutSeconds?: number;
}

/**
 * The reflector loop of a Kubernetes client, for one collection: list (remembering the
 * collection's `resourceVersion`), then watch from that version with bookmarks, applying
 * ADDED/MODIFIED/DELETED to a local copy and moving the version forward on every event and
 * BOOKMARK. A stream the server ends is re-opened from the last version at once; a dropped
 * one or an unreachable server is retried after a backoff (the objects known stay);
 * `410 Gone`/`Expired` (the version was compacted away) relists.
 */
export class ListWatch<T extends Named> {
  readonly #o: ListWatchOptions<T>;
  readonly #timers: Timers;
  readonly #random: Random;
  readonly #minMs: number;
  readonly #maxMs: number;
  #items = new Map<string, T>();
  #version: string | undefined;
  #stream: WatchStream | undefined;
  #timer: unknown;
  #attempt = 0;
  #stopped = true;
  #notifyQueued = false;
  #listed = false;
  #emptyEnds = 0;
  /** Lists done (the first and every relist), for tests and metrics. */
  lists = 0;
  /** Watches opened. */
  watches = 0;

  constructor(options: ListWatchOptions<T>) {
    this.#o = options;
    this.#timers = options.timers ?? realTimers;
    this.#random = options.random ?? Math.random;
    this.#minMs = duration("backoff.minMs", options.backoff?.minMs, 500, 1);
    this.#maxMs = duration(
      "backoff.maxMs",
      options.backoff?.maxMs,
      Math.max(30_000, this.#minMs),
      this.#minMs,
    );
  }

  /** Objects known now, by name. */
  get items(): ReadonlyMap<string, T> {
    return this.#items;
  }

  /** True once the first list succeeded. */
  get listed(): boolean {
    return this.#listed;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string | undefined {
    return this.#version;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#stream?.abort();
    this.#stream = undefined;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.#o.labelSelector) q.set("labelSelector", this.#o.labelSelector);
    if (this.#o.fieldSelector) q.set("fieldSelector", this.#o.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.#o.path}?${q}`;
  }

  #notify(): void {
    if (this.#notifyQueued) return;
    this.#notifyQueued = true;
    queueMicrotask(() => {
      this.#notifyQueued = false;
      if (!this.#stopped) this.#o.onChange(this.#items);
    });
  }

  #retry(error: unknown): void {
    if (this.#stopped) return;
    const err =
      error instanceof KubeApiError
        ? error
        : new KubeApiError(this.#o.path, 0, "Unreachable", String(error));
    this.#o.onError(err);
    const cap = Math.min(this.#maxMs, this.#minMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    const delay = cap / 2 + (this.#random() * cap) / 2;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, delay);
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    if (this.#version === undefined) {
      try {
        const list = await this.#o.client.request<{
          metadata?: { resourceVersion?: string };
          items?: T[];
        }>("GET", this.#query({}));
        if (this.#stopped) return;
        this.lists++;
        this.#items = new Map((list.items ?? []).map((o) => [o.metadata.name, o]));
        this.#version = list.metadata?.resourceVersion;
        this.#listed = true;
        this.#attempt = 0;
        this.#notify();
      } catch (err) {
        return this.#retry(err);
      }
    }
    let expired = false;
    let events = 0;
    const stream = this.#o.client.watch<T>(
      this.#query({
        watch: "1",
        allowWatchBookmarks: "true",
        timeoutSeconds: String(this.#o.watchTimeoutSeconds ?? 300),
        ...(this.#version !== undefined ? { resourceVersion: this.#version } : {}),
      }),
      (e: WatchEvent<T>) => {
        if (this.#stopped || expired) return;
        events++;
        if (e.type === "ERROR") {
          const s = e.object as { code?: number; reason?: string; message?: string };
          if (s.code === 410) {
            expired = true;
            this.#version = undefined;
            stream.abort();
          } else {
            stream.abort();
            this.#retry(
              new KubeApiError(
                this.#o.path,
                s.code ?? 0,
                s.reason ?? "Error",
                s.message ?? "watch error",
              ),
            );
          }
          return;
        }
        const version = e.object?.metadata?.resourceVersion;
        if (version !== undefined) this.#version = version;
        if (e.type === "BOOKMARK") return;
        if (e.type === "DELETED") this.#items.delete(e.object.metadata.name);
        else this.#items.set(e.object.metadata.name, e.object);
        this.#notify();
      },
      () => {
        this.watches++;
        this.#attempt = 0;
      },
    );
    this.#stream = stream;
    try {
      await stream.done;
    } catch (err) {
      if (this.#stream !== stream || this.#stopped) return;
      if (err instanceof KubeApiError && err.status === 410) {
        this.#version = undefined;
        return void this.#run();
      }
      return this.#retry(err);
    }
    if (this.#stream !== stream || this.#stopped) return;
    if (expired) return void this.#run();
    // The server ended the stream (its timeout): go on at once, unless streams keep ending
    // without a single event (something in between closing them), which backs off instead
    // of spinning.
    this.#emptyEnds = events === 0 ? this.#emptyEnds + 1 : 0;
    if (this.#emptyEnds < 3) return void this.#run();
    this.#emptyEnds = 0;
    this.#retry(new KubeApiError(this.#o.path, 200, "WatchEnded", "watches end without events"));
  }
}
