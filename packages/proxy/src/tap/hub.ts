import { timingSafeEqual } from "node:crypto";
import diagnostics_channel from "node:diagnostics_channel";
import type http from "node:http";
import { isUnobserved, meshChannels } from "@mesh/core";
import type { CounterSeries, GaugeSeries, Registry } from "@mesh/metrics";
import { isLoopback } from "../admin/admin.js";
import type { TapEvent } from "./event.js";
import { parseTapFilter, type TapFilter, tapMatches } from "./filter.js";

/** `admin.tap` settings, read per stream (reloads apply to the next one). */
export interface TapSettings {
  /** `false` turns `/tap` off (404). */
  enabled: boolean;
  /** When set, `/tap` needs `Authorization: Bearer <token>` and is open to any address. */
  token?: string | undefined;
  /** Lines a stream holds while its reader is slow; beyond it events are dropped and counted. */
  maxQueue: number;
  /** Request headers whose values tap shows (lower-case names); none by default. */
  headers: readonly string[];
}

/** Content type of a tap stream: one JSON object per line. */
export const TAP_CONTENT_TYPE = "application/x-ndjson";

/** One open `/tap` stream. */
interface Stream {
  readonly res: http.ServerResponse;
  readonly filter: TapFilter;
  readonly sample: number;
  readonly maxQueue: number;
  readonly headers: readonly string[];
  /** Lines waiting for the socket to drain; never more than `maxQueue`. */
  readonly queue: string[];
  blocked: boolean;
  /** Events dropped since the last `dropped` line. */
  dropped: number;
}

function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith("Bearer ")) return false;
  const got = Buffer.from(header.slice(7).trim());
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

function reply(res: http.ServerResponse, status: number, body: string, extra = {}): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

/** The NDJSON line of an event: fixed fields, plus allowed header values only. */
function eventLine(e: TapEvent, headers: readonly string[]): string {
  const out: Record<string, unknown> = {
    type: "request",
    ts: e.ts,
    direction: e.direction,
    method: e.method,
    authority: e.authority,
    path: e.path,
    route: e.route,
    backend: e.backend,
    status: e.status,
    grpcStatus: e.grpcStatus,
    latencyMs: Math.round(e.latencyMs * 1000) / 1000,
    durationMs: Math.round(e.durationMs * 1000) / 1000,
    bytes: e.bytes,
    tls: e.tls,
    clientId: e.clientId,
    serverId: e.serverId,
    endpoint: e.endpoint,
    error: e.error,
  };
  if (headers.length > 0) {
    const shown: Record<string, string> = {};
    for (const name of headers) {
      const v = e.headers[name];
      if (v !== undefined) shown[name] = Array.isArray(v) ? v.join(", ") : v;
    }
    out.headers = shown;
  }
  return `${JSON.stringify(out)}\n`;
}

/**
 * Live tap: serves `GET /tap` streams of the proxy's requests as NDJSON. It subscribes to
 * `mesh:proxy:request` only while at least one stream is open, so an untapped proxy builds
 * no events at all. Each stream is bounded: while its reader is slow, up to `maxQueue` lines
 * wait, more are dropped and counted (`tap_events_dropped_total`, and a `dropped` line in
 * the stream once it drains) — a reader that stops reading never grows the proxy's memory.
 */
export class TapHub {
  readonly #streams = new Set<Stream>();
  readonly #settings: () => TapSettings;
  readonly #dropped: CounterSeries;
  readonly #sent: CounterSeries;
  readonly #open: GaugeSeries;
  readonly #queued: GaugeSeries;
  readonly #onEvent = (message: unknown) => {
    // The warm-up's synthetic requests are not shown.
    if (!isUnobserved()) this.#publish(message as TapEvent);
  };

  constructor(settings: () => TapSettings, registry: Registry) {
    this.#settings = settings;
    const events = registry.counter({
      name: "tap_events_total",
      help: "Tap events per stream: sent to the reader, or dropped because it read too slowly.",
      labelNames: ["result"],
    });
    this.#sent = events.get({ result: "sent" });
    this.#dropped = events.get({ result: "dropped" });
    this.#open = registry
      .gauge({ name: "tap_streams", help: "Open /tap streams.", labelNames: [] })
      .get({});
    this.#queued = registry
      .gauge({
        name: "tap_queued_events",
        help: "Tap lines waiting for slow readers (at most admin.tap.maxQueue per stream).",
        labelNames: [],
      })
      .get({});
    registry.onCollect(() => {
      let queued = 0;
      for (const s of this.#streams) queued += s.queue.length;
      this.#queued.value = queued;
    });
  }

  /**
   * Answers `GET /tap?…`: checks access (loopback only, or the bearer token when
   * `admin.tap.token` is set), validates the filter (400 naming the parameter), then streams.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse, query: string): void {
    const settings = this.#settings();
    if (!settings.enabled) {
      reply(res, 404, "tap is disabled (admin.tap.enabled: false)\n");
      return;
    }
    if (settings.token !== undefined) {
      if (!bearerMatches(req.headers.authorization, settings.token)) {
        reply(res, 401, "tap needs Authorization: Bearer <admin.tap.token>\n", {
          "www-authenticate": 'Bearer realm="mesh-proxy tap"',
        });
        return;
      }
    } else if (!isLoopback(req.socket.remoteAddress)) {
      reply(
        res,
        403,
        "tap is allowed from loopback only; set admin.tap.token to allow clients with that bearer token\n",
      );
      return;
    }
    let filter: TapFilter;
    try {
      filter = parseTapFilter(new URLSearchParams(query));
    } catch (err) {
      reply(res, 400, `tap: ${(err as Error).message}\n`);
      return;
    }
    const stream: Stream = {
      res,
      filter,
      sample: filter.sample ?? 1,
      maxQueue: settings.maxQueue,
      headers: settings.headers,
      queue: [],
      blocked: false,
      dropped: 0,
    };
    res.writeHead(200, {
      "content-type": TAP_CONTENT_TYPE,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    // The first line says the stream is live: a client may send traffic once it has it.
    res.write(
      `${JSON.stringify({ type: "tap", filter, maxQueue: stream.maxQueue, headers: stream.headers })}\n`,
    );
    res.on("drain", () => this.#drain(stream));
    res.once("close", () => this.#remove(stream));
    if (this.#streams.size === 0)
      diagnostics_channel.subscribe(meshChannels.proxy.request, this.#onEvent);
    this.#streams.add(stream);
    this.#open.value = this.#streams.size;
  }

  #remove(stream: Stream): void {
    if (!this.#streams.delete(stream)) return;
    stream.queue.length = 0;
    this.#open.value = this.#streams.size;
    // Last reader gone: hasSubscribers turns false and requests stop building events.
    if (this.#streams.size === 0)
      diagnostics_channel.unsubscribe(meshChannels.proxy.request, this.#onEvent);
  }

  #publish(e: TapEvent): void {
    // Streams with the same header allowance share one serialized line.
    let line: string | undefined;
    let lineHeaders: readonly string[] | undefined;
    for (const s of this.#streams) {
      if (!tapMatches(s.filter, e)) continue;
      if (s.sample < 1 && Math.random() >= s.sample) continue;
      if (line === undefined || lineHeaders !== s.headers) {
        line = eventLine(e, s.headers);
        lineHeaders = s.headers;
      }
      this.#send(s, line);
    }
  }

  #send(s: Stream, line: string): void {
    if (s.blocked) {
      if (s.queue.length < s.maxQueue) s.queue.push(line);
      else {
        s.dropped++;
        this.#dropped.value++;
      }
      return;
    }
    this.#sent.value++;
    if (!s.res.write(line)) s.blocked = true;
  }

  /** The reader caught up: send what waited, then say how much was lost. */
  #drain(s: Stream): void {
    s.blocked = false;
    while (s.queue.length > 0 && !s.blocked) {
      this.#sent.value++;
      if (!s.res.write(s.queue.shift() as string)) s.blocked = true;
    }
    if (!s.blocked && s.dropped > 0) {
      const dropped = s.dropped;
      s.dropped = 0;
      if (!s.res.write(`${JSON.stringify({ type: "dropped", count: dropped })}\n`))
        s.blocked = true;
    }
  }
}
