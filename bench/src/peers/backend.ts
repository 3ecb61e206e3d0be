/**
 * The backend process: one or more HTTP/1.1 endpoints on 127.0.0.1 with programmable
 * behaviour (delay, failure ratio, fail-once-per-request-id, timed phases), plus a control
 * listener that reports per-endpoint request counts and arrival timelines. Run as
 * `node backend.ts '<json spec>'`; prints `READY {json}` once every listener is up.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Behaviour of an endpoint; phases override it inside their time window. */
export interface EndpointMode {
  /** Delay before answering, ms (0 = answer immediately). */
  delayMs?: number;
  /** Fraction of requests answered with `failStatus` (0..1). */
  failRatio?: number;
  /** Fraction of distinct request ids that fail on their first attempt only (0..1). */
  failOnceRatio?: number;
  /** Status used for failures (default 503). */
  failStatus?: number;
  /**
   * Failures by arrival order at this endpoint: the n-th request answers `failStatus` when
   * character `n % length` is `x` (e.g. `x.x..` fails 40 %, never twice in a row).
   * Deterministic, unlike `failRatio`, so a run of failures can be ruled out.
   */
  failPattern?: string;
  /** Extra headers on failure answers (e.g. `{ "retry-after": "2" }`). */
  failHeaders?: Record<string, string>;
  /** Fraction of requests held for `stallMs` before their answer (0..1): a replica's tail. */
  stallRatio?: number;
  /** How long a stalled request is held, ms. */
  stallMs?: number;
}

/** A timed override of an endpoint's mode. */
export interface Phase extends EndpointMode {
  fromEpochMs: number;
  toEpochMs?: number;
}

/** One endpoint of the backend. */
export interface EndpointSpec extends EndpointMode {
  name: string;
  phases?: Phase[];
}

/** The backend's command-line spec. */
export interface BackendSpec {
  endpoints: EndpointSpec[];
  /** Header that carries the logical request id (for failOnceRatio). */
  idHeader?: string;
  /** Width of arrival-timeline buckets, ms. */
  bucketMs?: number;
}

/** What `GET /stats` on the control port returns. */
export interface BackendStats {
  sinceEpochMs: number;
  bucketMs: number;
  endpoints: Array<{
    name: string;
    port: number;
    requests: number;
    failed: number;
    timeline: number[];
  }>;
}

const MAX_BUCKETS = 10_000;
const MAX_SEEN_IDS = 2_000_000;
const BODY = Buffer.from("ok\n");

interface Live {
  spec: EndpointSpec;
  server: Server;
  port: number;
  requests: number;
  failed: number;
  /** Requests that met a `failPattern`, the index into it. */
  patternIndex: number;
  timeline: number[];
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{"endpoints":[{"name":"backend"}]}') as BackendSpec;
  const idHeader = (spec.idHeader ?? "x-bench-id").toLowerCase();
  const bucketMs = spec.bucketMs ?? 100;
  let sinceEpochMs = Date.now();
  const seen = new Set<string>();

  const modeOf = (ep: EndpointSpec, now: number): EndpointMode => {
    let mode: EndpointMode = ep;
    for (const phase of ep.phases ?? []) {
      if (now >= phase.fromEpochMs && (phase.toEpochMs === undefined || now < phase.toEpochMs)) {
        mode = { ...mode, ...phase };
      }
    }
    return mode;
  };

  const handle = (live: Live, req: IncomingMessage, res: ServerResponse) => {
    const now = Date.now();
    live.requests++;
    const bucket = Math.floor((now - sinceEpochMs) / bucketMs);
    if (bucket >= 0 && bucket < MAX_BUCKETS) {
      while (live.timeline.length <= bucket) live.timeline.push(0);
      live.timeline[bucket]!++;
    }
    const mode = modeOf(live.spec, now);
    let fail = mode.failRatio !== undefined && mode.failRatio > 0 && Math.random() < mode.failRatio;
    if (mode.failPattern) {
      fail ||= mode.failPattern[live.patternIndex % mode.failPattern.length] === "x";
      live.patternIndex++;
    }
    if (!fail && mode.failOnceRatio) {
      const id = req.headers[idHeader];
      if (typeof id === "string" && fnv1a(id) % 10_000 < mode.failOnceRatio * 10_000) {
        if (!seen.has(id)) {
          if (seen.size >= MAX_SEEN_IDS) seen.clear();
          seen.add(id);
          fail = true;
        }
      }
    }
    const answer = () => {
      if (fail) {
        live.failed++;
        res.writeHead(mode.failStatus ?? 503, { ...mode.failHeaders, "content-length": "5" });
        res.end("fail\n");
      } else {
        res.writeHead(200, { "content-type": "text/plain", "content-length": BODY.length });
        res.end(BODY);
      }
    };
    // Drain the request body (GETs have none) before answering.
    req.resume();
    const stall =
      mode.stallRatio !== undefined && mode.stallRatio > 0 && Math.random() < mode.stallRatio
        ? (mode.stallMs ?? 0)
        : 0;
    const wait = (mode.delayMs ?? 0) + stall;
    if (wait > 0) setTimeout(answer, wait);
    else answer();
  };

  const lives: Live[] = [];
  for (const ep of spec.endpoints) {
    const live: Live = {
      spec: ep,
      server: createServer(),
      port: 0,
      requests: 0,
      failed: 0,
      patternIndex: 0,
      timeline: [],
    };
    live.server.keepAliveTimeout = 60_000;
    live.server.on("request", (req, res) => handle(live, req, res));
    await new Promise<void>((resolve) => live.server.listen(0, "127.0.0.1", resolve));
    live.port = (live.server.address() as AddressInfo).port;
    lives.push(live);
  }

  const control = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/stats") {
        const stats: BackendStats = {
          sinceEpochMs,
          bucketMs,
          endpoints: lives.map((l) => ({
            name: l.spec.name,
            port: l.port,
            requests: l.requests,
            failed: l.failed,
            timeline: l.timeline,
          })),
        };
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(stats));
        return;
      }
      if (req.url === "/configure" && req.method === "POST") {
        // Body: { reset?: boolean, endpoints?: { [name]: EndpointMode & { phases?: Phase[] } } }
        const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as {
          reset?: boolean;
          endpoints?: Record<string, Partial<EndpointSpec>>;
        };
        for (const l of lives) {
          const update = body.endpoints?.[l.spec.name] ?? body.endpoints?.["*"];
          if (update) l.spec = { name: l.spec.name, ...update };
          if (body.reset) {
            l.requests = 0;
            l.failed = 0;
            l.patternIndex = 0;
            l.timeline = [];
          }
        }
        if (body.reset) {
          sinceEpochMs = Date.now();
          seen.clear();
        }
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(404);
      res.end();
    });
  });
  await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
  const controlPort = (control.address() as AddressInfo).port;
  process.stdout.write(
    `READY ${JSON.stringify({ control: controlPort, endpoints: lives.map((l) => ({ name: l.spec.name, port: l.port })) })}\n`,
  );
  const shutdown = () => {
    for (const l of lives) l.server.close();
    control.close();
    process.exit(0);
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

void main();
