import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { grpcStatusValue } from "../classify/classify.js";
import { endSpan } from "../otel/trace.js";
import { type Exchange, LabelCache, type ServerInstrumentation } from "./exchange.js";

// HTTP/1 requests are observed through the diagnostics channels node:http publishes for every
// server anyway: no listener on the server and none per response, so the app's own 'request'
// listener stays the only one. Aborted responses never 'finish'; they are found when their
// socket closes, through one listener per connection.
const REQUEST_START = "http.server.request.start";
const RESPONSE_FINISH = "http.server.response.finish";

interface ServerMessage {
  request: IncomingMessage;
  response: ServerResponse;
  socket: Socket;
  server: object;
}

/** One instrumentation's state on one socket; `next` chains further instrumentations. */
class Connection extends LabelCache {
  /** The exchange whose response is being written. */
  head: Exchange | undefined = undefined;
  /** Pipelined exchanges waiting behind `head`, in response order. */
  queue: Exchange[] | undefined = undefined;
  next: Connection | undefined = undefined;
  constructor(readonly owner: ServerInstrumentation) {
    super();
  }
}

// Weak: a server dropped without detaching must not be kept alive by its instrumentation.
const servers = new WeakMap<object, ServerInstrumentation[]>();
let attachedCount = 0;
const connections = new WeakMap<object, Connection>();
let inFlight = 0;
let subscribed = false;

function connectionOf(socket: Socket, owner: ServerInstrumentation): Connection {
  const first = connections.get(socket);
  let c = first;
  while (c !== undefined && c.owner !== owner) c = c.next;
  if (c !== undefined) return c;
  c = new Connection(owner);
  if (first === undefined) {
    connections.set(socket, c);
    socket.once("close", onSocketClose);
  } else {
    c.next = first.next;
    first.next = c;
  }
  return c;
}

function onRequestStart(message: unknown): void {
  const m = message as ServerMessage;
  const owners = servers.get(m.server);
  if (owners === undefined) return;
  const req = m.request;
  const res = m.response;
  for (let i = 0; i < owners.length; i++) {
    const conn = connectionOf(m.socket, owners[i]!);
    const x = owners[i]!.begin(
      conn,
      m.socket,
      res,
      res.writeHead as Exchange["send"],
      req.method ?? "GET",
      req.url ?? "/",
      req.headers.host,
      req.headers,
    );
    if (conn.head === undefined) conn.head = x;
    else if (conn.queue === undefined) conn.queue = [x];
    else conn.queue.push(x);
    inFlight++;
  }
  res.writeHead = timedWriteHead as ServerResponse["writeHead"];
}

function shift(conn: Connection): void {
  const q = conn.queue;
  conn.head = q === undefined || q.length === 0 ? undefined : q.shift();
}

function settled(): void {
  inFlight--;
  if (inFlight === 0 && attachedCount === 0) unsubscribeAll();
}

function onResponseFinish(message: unknown): void {
  const m = message as ServerMessage;
  const res = m.response;
  for (let c = connections.get(m.socket); c !== undefined; c = c.next) {
    const x = c.head;
    if (x === undefined || x.target !== res) continue;
    shift(c);
    const grpc = grpcStatusValue(res.getHeader("grpc-status"));
    x.handle.response(res.statusCode, grpc, x.latency());
    if (x.span !== undefined) endSpan(x.span, res.statusCode, grpc);
    settled();
  }
}

function abort(x: Exchange): void {
  const res = x.target as ServerResponse;
  const status = res.headersSent ? res.statusCode : 0;
  x.handle.streamError(x.latency(), status);
  if (x.span !== undefined) {
    endSpan(
      x.span,
      status,
      grpcStatusValue(res.getHeader("grpc-status")),
      new Error("response aborted"),
    );
  }
  settled();
}

function onSocketClose(this: Socket): void {
  const first = connections.get(this);
  connections.delete(this);
  for (let c = first; c !== undefined; c = c.next) {
    while (c.head !== undefined) {
      const x = c.head;
      shift(c);
      abort(x);
    }
  }
}

function queued(c: Connection, res: ServerResponse): Exchange | undefined {
  const q = c.queue;
  if (q !== undefined) for (const x of q) if (x.target === res) return x;
  return undefined;
}

// writeHead is where h1 headers are committed (write/end reach it via _implicitHeader).
function timedWriteHead(this: ServerResponse): unknown {
  let send: Exchange["send"] | undefined;
  // A pipelined response waiting for its turn has no socket yet; its request has one.
  for (let c = connections.get(this.req?.socket as object); c !== undefined; c = c.next) {
    const x = c.head?.target === this ? c.head : queued(c, this);
    if (x === undefined) continue;
    if (x.ttfb < 0) x.ttfb = x.clock.now() - x.start;
    send = x.send;
  }
  send ??= Object.getPrototypeOf(this).writeHead as Exchange["send"];
  // biome-ignore lint/complexity/noArguments: forwards every overload of writeHead as called, without a rest array per response.
  return send.apply(this, arguments as unknown as unknown[]);
}

function unsubscribeAll(): void {
  if (!subscribed) return;
  subscribed = false;
  unsubscribe(REQUEST_START, onRequestStart);
  unsubscribe(RESPONSE_FINISH, onResponseFinish);
}

/**
 * Records HTTP/1 exchanges of `server` for `owner` until the returned function is called;
 * exchanges in flight then are still recorded.
 */
export function trackHttp1(server: object, owner: ServerInstrumentation): () => void {
  const owners = servers.get(server);
  if (owners === undefined) servers.set(server, [owner]);
  else owners.push(owner);
  attachedCount++;
  if (!subscribed) {
    subscribed = true;
    subscribe(REQUEST_START, onRequestStart);
    subscribe(RESPONSE_FINISH, onResponseFinish);
  }
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    const list = servers.get(server);
    const i = list === undefined ? -1 : list.indexOf(owner);
    if (i >= 0) list!.splice(i, 1);
    if (list !== undefined && list.length === 0) servers.delete(server);
    attachedCount--;
    if (inFlight === 0 && attachedCount === 0) unsubscribeAll();
  };
}
