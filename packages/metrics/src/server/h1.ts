import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { grpcStatusValue } from "../classify/classify.js";
import { endSpan } from "../otel/trace.js";
import { LabelCache, type ServerInstrumentation, type ServerRequest } from "./exchange.js";

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
  head: ServerRequest | undefined = undefined;
  /** Pipelined exchanges waiting behind `head`, in response order. */
  queue: ServerRequest[] | undefined = undefined;
  next: Connection | undefined = undefined;
}

// State lives on the objects it belongs to, under symbols (one inline-cached property read
// per request instead of a WeakMap lookup), so a server, socket or response dropped without
// detaching is collected with its instrumentation state.
const kOwners = Symbol("mesh.metrics.owners");
const kConnection = Symbol("mesh.metrics.connection");
const kExchange = Symbol("mesh.metrics.exchange");
type WithOwners = { [kOwners]?: ServerInstrumentation[] | undefined };
type WithConnection = { [kConnection]?: Connection | undefined };
type WithExchange = { [kExchange]?: ServerRequest | undefined };
let attachedCount = 0;
let inFlight = 0;
let subscribed = false;

function connectionOf(socket: Socket & WithConnection, owner: ServerInstrumentation): Connection {
  const first = socket[kConnection];
  let c = first;
  while (c !== undefined && c.owner !== owner) c = c.next;
  if (c !== undefined) return c;
  c = new Connection(owner);
  if (first === undefined) {
    socket[kConnection] = c;
    socket.once("close", onSocketClose);
  } else {
    c.next = first.next;
    first.next = c;
  }
  return c;
}

function onRequestStart(message: unknown): void {
  const m = message as ServerMessage;
  const owners = (m.server as WithOwners)[kOwners];
  if (owners === undefined) return;
  const req = m.request;
  const res = m.response as ServerResponse & WithExchange;
  for (let i = 0; i < owners.length; i++) {
    const conn = connectionOf(m.socket, owners[i]!);
    const x = owners[i]!.begin(
      conn,
      m.socket,
      res,
      res.writeHead as ServerRequest["send"],
      req.method ?? "GET",
      req.url ?? "/",
      req.headers.host,
      req.headers,
    );
    if (conn.head === undefined) conn.head = x;
    else if (conn.queue === undefined) conn.queue = [x];
    else conn.queue.push(x);
    // Several instrumentations of one server chain their exchanges on the response.
    x.sibling = res[kExchange];
    res[kExchange] = x;
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
  for (let c = (m.socket as WithConnection)[kConnection]; c !== undefined; c = c.next) {
    const x = c.head;
    if (x === undefined || x.target !== res) continue;
    shift(c);
    const grpc = grpcStatusValue(res.getHeader("grpc-status"));
    x.handle.response(res.statusCode, grpc, x.latency());
    if (x.span !== undefined) endSpan(x.span, res.statusCode, grpc);
    settled();
  }
}

function abort(x: ServerRequest): void {
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

function onSocketClose(this: Socket & WithConnection): void {
  const first = this[kConnection];
  this[kConnection] = undefined;
  for (let c = first; c !== undefined; c = c.next) {
    while (c.head !== undefined) {
      const x = c.head;
      shift(c);
      abort(x);
    }
  }
}

// writeHead is where h1 headers are committed (write/end reach it via _implicitHeader).
function timedWriteHead(this: ServerResponse & WithExchange): unknown {
  let send: ServerRequest["send"] | undefined;
  for (let x = this[kExchange]; x !== undefined; x = x.sibling) {
    if (x.ttfb < 0) x.ttfb = x.clock.now() - x.start;
    send = x.send;
  }
  send ??= Object.getPrototypeOf(this).writeHead as ServerRequest["send"];
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
  const s = server as WithOwners;
  const owners = s[kOwners];
  if (owners === undefined) s[kOwners] = [owner];
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
    const list = s[kOwners];
    const i = list === undefined ? -1 : list.indexOf(owner);
    if (i >= 0) list!.splice(i, 1);
    if (list !== undefined && list.length === 0) s[kOwners] = undefined;
    attachedCount--;
    if (inFlight === 0 && attachedCount === 0) unsubscribeAll();
  };
}
