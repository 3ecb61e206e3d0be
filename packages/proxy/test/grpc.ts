import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};

function method(path: string, requestStream: boolean, responseStream: boolean) {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  };
}

/**
 * A tiny gRPC service with JSON messages (no .proto needed): every call shape, plus
 * `locked`, a method outside `/test.Echo/` for route-scoped authorization tests.
 */
export const EchoService: grpc.ServiceDefinition = {
  unary: method("/test.Echo/Unary", false, false),
  stream: method("/test.Echo/Stream", false, true),
  collect: method("/test.Echo/Collect", true, false),
  chat: method("/test.Echo/Chat", true, true),
  watch: method("/test.Echo/Watch", false, true),
  locked: method("/test.Locked/Unary", false, false),
};

export type Msg = {
  text?: string;
  count?: number;
  fail?: number;
  delayMs?: number;
  /** Unary: every other call (the 1st, 3rd, …) fails with this status code. */
  failOdd?: number;
  from?: string;
  /** The `mesh-client-id` metadata the app received. */
  clientId?: string;
};

const clientIdOf = (md: grpc.Metadata) => {
  const v = md.get("mesh-client-id")[0];
  return v === undefined ? {} : { clientId: String(v) };
};

/** What a {@link startGrpcServer} server saw. */
export interface GrpcServerStats {
  /** Unary calls received (each attempt of a retried call counts). */
  unaryCalls: number;
  /** Emits `cancelled` (with the messages written) when a `watch` call is cancelled by its client. */
  readonly watches: EventEmitter;
}

/** Starts a gRPC server on 127.0.0.1:0; `name` is echoed back in replies. */
export async function startGrpcServer(name = "app"): Promise<{
  address: string;
  server: grpc.Server;
  stats: GrpcServerStats;
  close(): Promise<void>;
}> {
  const server = new grpc.Server();
  const stats: GrpcServerStats = { unaryCalls: 0, watches: new EventEmitter() };
  const unary = (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
    const m = call.request;
    stats.unaryCalls++;
    if (m.fail !== undefined) return cb({ code: m.fail, details: `failed on purpose ${m.fail}` });
    if (m.failOdd !== undefined && stats.unaryCalls % 2 === 1) {
      return cb({ code: m.failOdd, details: `odd call ${stats.unaryCalls} fails` });
    }
    const reply = { text: m.text, from: name, ...clientIdOf(call.metadata) };
    setTimeout(() => cb(null, reply), m.delayMs ?? 0);
  };
  server.addService(EchoService, {
    unary,
    locked: unary,
    stream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      const n = call.request.count ?? 3;
      for (let i = 0; i < n; i++) call.write({ text: `${call.request.text}-${i}`, from: name });
      call.end();
    },
    collect: (call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const texts: string[] = [];
      call.on("data", (m: Msg) => texts.push(m.text ?? ""));
      call.on("end", () => cb(null, { text: texts.join(","), count: texts.length, from: name }));
    },
    // Writes a message every `delayMs` (default 5) until the client cancels the call.
    watch: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      let written = 0;
      const timer = setInterval(() => {
        call.write({ text: `${call.request.text}-${written}`, from: name });
        written++;
      }, call.request.delayMs ?? 5);
      call.on("cancelled", () => {
        clearInterval(timer);
        stats.watches.emit("cancelled", written);
      });
    },
    chat: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
      call.on("data", (m: Msg) => call.write({ text: `echo:${m.text}`, from: name }));
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    server,
    stats,
    close: () => new Promise((r) => server.tryShutdown(() => r())),
  };
}

const Client = grpc.makeGenericClientConstructor(EchoService, "Echo");

/** A client for {@link EchoService} via `target`, sending `authority` as :authority. */
export function echoClient(
  target: string,
  authority: string,
): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  return new Client(target, grpc.credentials.createInsecure(), {
    "grpc.default_authority": authority,
  }) as never;
}

type UnaryFn = (
  m: Msg,
  md: grpc.Metadata,
  o: grpc.CallOptions,
  cb: (e: grpc.ServiceError | null, r: Msg) => void,
) => void;

/** One unary call (`method` defaults to `unary`; `locked` is the other unary method). */
export function unary(
  client: ReturnType<typeof echoClient>,
  msg: Msg,
  deadlineMs?: number,
  method: "unary" | "locked" = "unary",
): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const opts = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    (client[method] as UnaryFn)(msg, new grpc.Metadata(), opts, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** A server-streaming call: the replies in order. */
export function serverStream(client: ReturnType<typeof echoClient>, msg: Msg): Promise<Msg[]> {
  return new Promise((resolve, reject) => {
    const call = (client.stream as (m: Msg) => grpc.ClientReadableStream<Msg>)(msg);
    const out: Msg[] = [];
    call.on("data", (m: Msg) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
  });
}

/** A client-streaming call: sends `msgs`, resolves with the single reply. */
export function clientStream(client: ReturnType<typeof echoClient>, msgs: Msg[]): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const call = (
      client.collect as (
        cb: (e: grpc.ServiceError | null, r: Msg) => void,
      ) => grpc.ClientWritableStream<Msg>
    )((err, res) => (err ? reject(err) : resolve(res)));
    for (const m of msgs) call.write(m);
    call.end();
  });
}

/**
 * A bidi-streaming call driven one message at a time: `send` resolves with the echo of
 * that message, so the caller can spread one stream over as long as it likes.
 */
export function bidi(client: ReturnType<typeof echoClient>): {
  send(text: string): Promise<Msg>;
  end(): Promise<void>;
} {
  const call = (client.chat as () => grpc.ClientDuplexStream<Msg, Msg>)();
  const waiting: { resolve: (m: Msg) => void; reject: (e: Error) => void }[] = [];
  let failed: Error | undefined;
  const ended = new Promise<void>((resolve, reject) => {
    call.on("end", resolve);
    call.on("error", (e: Error) => {
      failed = e;
      for (const w of waiting.splice(0)) w.reject(e);
      reject(e);
    });
  });
  ended.catch(() => undefined);
  call.on("data", (m: Msg) => waiting.shift()?.resolve(m));
  return {
    send: (text) =>
      failed
        ? Promise.reject(failed)
        : new Promise((resolve, reject) => {
            waiting.push({ resolve, reject });
            call.write({ text });
          }),
    end: () => {
      call.end();
      return ended;
    },
  };
}

/**
 * Starts a `watch` call, cancels it after `messages` replies, and resolves with
 * `performance.now()` at the moment of the cancel.
 */
export function watchThenCancel(
  client: ReturnType<typeof echoClient>,
  messages: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = (client.watch as (m: Msg) => grpc.ClientReadableStream<Msg>)({ text: "w" });
    let seen = 0;
    call.on("data", () => {
      if (++seen !== messages) return;
      const at = performance.now();
      call.cancel();
      resolve(at);
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  });
}
