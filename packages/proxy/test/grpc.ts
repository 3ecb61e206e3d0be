import * as grpc from "@grpc/grpc-js";

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};

/** A tiny gRPC service with JSON messages (no .proto needed). */
export const EchoService: grpc.ServiceDefinition = {
  unary: {
    path: "/test.Echo/Unary",
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
  stream: {
    path: "/test.Echo/Stream",
    requestStream: false,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

export type Msg = { text?: string; count?: number; fail?: number; delayMs?: number; from?: string };

/** Starts a gRPC server on 127.0.0.1:0; `name` is echoed back in replies. */
export async function startGrpcServer(
  name = "app",
): Promise<{ address: string; server: grpc.Server; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(EchoService, {
    unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const m = call.request;
      if (m.fail !== undefined) return cb({ code: m.fail, details: `failed on purpose ${m.fail}` });
      setTimeout(() => cb(null, { text: m.text, from: name }), m.delayMs ?? 0);
    },
    stream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      const n = call.request.count ?? 3;
      for (let i = 0; i < n; i++) call.write({ text: `${call.request.text}-${i}`, from: name });
      call.end();
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

export function unary(
  client: ReturnType<typeof echoClient>,
  msg: Msg,
  deadlineMs?: number,
): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const opts = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    (
      client.unary as (
        m: Msg,
        md: grpc.Metadata,
        o: grpc.CallOptions,
        cb: (e: grpc.ServiceError | null, r: Msg) => void,
      ) => void
    )(msg, new grpc.Metadata(), opts, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export function serverStream(client: ReturnType<typeof echoClient>, msg: Msg): Promise<Msg[]> {
  return new Promise((resolve, reject) => {
    const call = (client.stream as (m: Msg) => grpc.ClientReadableStream<Msg>)(msg);
    const out: Msg[] = [];
    call.on("data", (m: Msg) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
  });
}
