import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import { grpcStatusIn, NO_GRPC_STATUS } from "../classify/classify.js";
import { endSpan } from "../otel/trace.js";
import { LabelCache, type ServerInstrumentation, type ServerRequest } from "./exchange.js";

const kExchange = Symbol("mesh.metrics.exchange");
type WithExchange = { [kExchange]?: ServerRequest };
// Label caches live on the session, chained per instrumentation like the HTTP/1 side's state
// on the socket: one property read per stream instead of a WeakMap lookup.
const kLabels = Symbol("mesh.metrics.labels");
type WithLabels = { [kLabels]?: SessionLabels };

// respond() sends the h2 response headers. Several instrumentations of one server chain their
// exchanges through `sibling`; the first one holds the stream's own respond().
function timedRespond(this: ServerHttp2Stream & WithExchange): unknown {
  let send: ServerRequest["send"] | undefined;
  for (let x = this[kExchange]; x !== undefined; x = x.sibling) {
    if (x.ttfb < 0) x.ttfb = x.clock.now() - x.start;
    send = x.send;
  }
  send ??= Object.getPrototypeOf(this).respond as ServerRequest["send"];
  // biome-ignore lint/complexity/noArguments: forwards respond's arguments as called, without a rest array per stream.
  return send.apply(this, arguments as unknown as unknown[]);
}

function onStreamClose(this: ServerHttp2Stream & WithExchange): void {
  let x = this[kExchange];
  if (x === undefined) return;
  this[kExchange] = undefined;
  const sent = this.sentHeaders as IncomingHttpHeaders | undefined;
  const status = Number(sent?.[":status"] ?? 0);
  let grpc = grpcStatusIn(this.sentTrailers as never);
  if (grpc === NO_GRPC_STATUS) grpc = grpcStatusIn(sent as never);
  // NO_ERROR (0) is a clean end; any other code means the stream was reset.
  const clean = this.rstCode === 0 && status > 0;
  for (; x !== undefined; x = x.sibling) {
    const latency = x.latency();
    if (clean) {
      x.handle.response(status, grpc, latency);
      if (x.span !== undefined) endSpan(x.span, status, grpc);
    } else {
      x.handle.streamError(latency, status);
      if (x.span !== undefined) {
        endSpan(x.span, status, grpc, new Error(`stream reset ${this.rstCode}`));
      }
    }
  }
}

/** One instrumentation's label cache on one session; `next` chains further instrumentations. */
class SessionLabels extends LabelCache {
  next: SessionLabels | undefined = undefined;
}

function labelsOf(session: WithLabels, owner: ServerInstrumentation): LabelCache {
  const first = session[kLabels];
  let l = first;
  while (l !== undefined && l.owner !== owner) l = l.next;
  if (l !== undefined) return l;
  l = new SessionLabels(owner);
  if (first === undefined) session[kLabels] = l;
  else {
    l.next = first.next;
    first.next = l;
  }
  return l;
}

/** Records HTTP/2 streams of `server` (incl. gRPC) for `owner`; returns the detach function. */
export function trackHttp2(server: Http2Server, owner: ServerInstrumentation): () => void {
  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const labels = labelsOf(stream.session as WithLabels, owner);
    const s = stream as ServerHttp2Stream & WithExchange;
    const earlier = s[kExchange];
    const x = owner.begin(
      labels,
      stream.session?.socket as Socket,
      stream,
      stream.respond as ServerRequest["send"],
      String(headers[":method"] ?? "GET"),
      String(headers[":path"] ?? "/"),
      headers[":authority"],
      headers,
    );
    x.sibling = earlier;
    s[kExchange] = x;
    if (earlier === undefined) {
      s.respond = timedRespond as ServerHttp2Stream["respond"];
      // A stream closes once: a plain listener, without once()'s wrapper per stream.
      stream.on("close", onStreamClose);
    }
  };
  server.prependListener("stream", onStream);
  return () => {
    server.removeListener("stream", onStream);
  };
}
