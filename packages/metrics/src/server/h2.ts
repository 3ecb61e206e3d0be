import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import { grpcStatusOf, NO_GRPC_STATUS } from "../classify/classify.js";
import { endSpan } from "../otel/trace.js";
import { type Exchange, LabelCache, type ServerInstrumentation } from "./exchange.js";

const kExchange = Symbol("mesh.metrics.exchange");
type WithExchange = { [kExchange]?: Exchange };

// respond() sends the h2 response headers.
function timedRespond(this: ServerHttp2Stream & WithExchange): unknown {
  const x = this[kExchange];
  const send = x === undefined ? (Object.getPrototypeOf(this).respond as Exchange["send"]) : x.send;
  if (x !== undefined && x.ttfb < 0) x.ttfb = x.clock.now() - x.start;
  // biome-ignore lint/complexity/noArguments: forwards respond's arguments as called, without a rest array per stream.
  return send.apply(this, arguments as unknown as unknown[]);
}

function onStreamClose(this: ServerHttp2Stream & WithExchange): void {
  const x = this[kExchange];
  if (x === undefined) return;
  this[kExchange] = undefined;
  const sent = this.sentHeaders as IncomingHttpHeaders | undefined;
  const status = Number(sent?.[":status"] ?? 0);
  let grpc = grpcStatusOf(this.sentTrailers as never);
  if (grpc === NO_GRPC_STATUS) grpc = grpcStatusOf(sent as never);
  const latency = x.latency();
  // NO_ERROR (0) is a clean end; any other code means the stream was reset.
  if (this.rstCode === 0 && status > 0) {
    x.handle.response(status, grpc, latency);
    if (x.span !== undefined) endSpan(x.span, status, grpc);
  } else {
    x.handle.streamError(latency, status);
    if (x.span !== undefined) {
      endSpan(x.span, status, grpc, new Error(`stream reset ${this.rstCode}`));
    }
  }
}

/** Records HTTP/2 streams of `server` (incl. gRPC) for `owner`; returns the detach function. */
export function trackHttp2(server: Http2Server, owner: ServerInstrumentation): () => void {
  const perSession = new WeakMap<object, LabelCache>();
  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const session = stream.session as object;
    let labels = perSession.get(session);
    if (labels === undefined) {
      labels = new LabelCache();
      perSession.set(session, labels);
    }
    const s = stream as ServerHttp2Stream & WithExchange;
    s[kExchange] = owner.begin(
      labels,
      stream.session?.socket as Socket,
      stream,
      stream.respond as Exchange["send"],
      String(headers[":method"] ?? "GET"),
      String(headers[":path"] ?? "/"),
      headers[":authority"],
      headers,
    );
    s.respond = timedRespond as ServerHttp2Stream["respond"];
    stream.once("close", onStreamClose);
  };
  server.prependListener("stream", onStream);
  return () => {
    server.removeListener("stream", onStream);
  };
}
