import type { KeyObject } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/**
 * A fake SPIRE agent for tests: a real gRPC server (grpc-js) on a Unix socket in a temp
 * dir, serving the SPIFFE Workload API's `FetchX509SVID` (and `FetchX509Bundles`) from the
 * proto definition in fixtures/workload.proto. Like SPIRE, it refuses calls without the
 * `workload.spiffe.io: true` metadata with PERMISSION_DENIED. It does no workload
 * attestation: every caller gets the response the test set. There is no SPIRE on these
 * machines, so this stands in for one; the client under test speaks to it over the wire.
 */

const PROTO = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "workload.proto");

/** One SVID of an `X509SVIDResponse` as the proto's JSON-ish object. */
export interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint?: string;
}

/** An `X509SVIDResponse`. */
export interface X509SvidResponse {
  svids: X509SvidMessage[];
  crl?: Buffer[];
  federated_bundles?: Record<string, Buffer>;
}

/** DER-concatenates certificates, as the Workload API carries them. */
export function derOf(certs: readonly { raw: Buffer }[]): Buffer {
  return Buffer.concat(certs.map((c) => c.raw));
}

/**
 * The wire message for an SVID and its bundle (an `X509Svid` and a `TrustBundle`, typed by
 * shape so tests importing the package's source or its build can both pass theirs). The key
 * is exported only in memory.
 */
export function svidMessage(
  svid: {
    spiffeId: { toString(): string };
    chain: readonly { raw: Buffer }[];
    privateKey: KeyObject;
  },
  bundle: { certificates: readonly { raw: Buffer }[] },
  hint = "",
): X509SvidMessage {
  return {
    spiffe_id: svid.spiffeId.toString(),
    x509_svid: derOf(svid.chain),
    x509_svid_key: svid.privateKey.export({ type: "pkcs8", format: "der" }),
    bundle: derOf(bundle.certificates),
    hint,
  };
}

/** The `X509BundlesResponse` matching an SVID response: each SVID's bundle plus the federated ones. */
function bundlesOf(r: X509SvidResponse): { bundles: Record<string, Buffer> } {
  const bundles: Record<string, Buffer> = { ...r.federated_bundles };
  for (const s of r.svids) {
    // A malformed ID is the test's bad data for FetchX509SVID; skip it here.
    if (URL.canParse(s.spiffe_id)) bundles[new URL(s.spiffe_id).host] = s.bundle;
  }
  return { bundles };
}

export class FakeSpireAgent extends EventEmitter<{ stream: []; denied: [] }> {
  readonly socketPath: string;
  /** `unix:///...` form of the socket, as `SPIFFE_ENDPOINT_SOCKET` holds it. */
  readonly address: string;
  /** FetchX509SVID calls accepted so far. */
  calls = 0;
  /** Calls refused for missing `workload.spiffe.io` metadata. */
  denied = 0;
  readonly #server: grpc.Server;
  readonly #dir: string;
  readonly #streams = new Set<grpc.ServerWritableStream<unknown, X509SvidResponse>>();
  readonly #bundleStreams = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  #response: X509SvidResponse | undefined;

  private constructor(server: grpc.Server, dir: string, socketPath: string) {
    super();
    this.#server = server;
    this.#dir = dir;
    this.socketPath = socketPath;
    this.address = `unix://${socketPath}`;
  }

  /** Starts the agent on `agent.sock` in a new temp dir (or at `socketPath`). */
  static async start(socketPath?: string): Promise<FakeSpireAgent> {
    const dir = mkdtempSync(join(tmpdir(), "fake-spire-agent-"));
    const path = socketPath ?? join(dir, "agent.sock");
    const def = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      SpiffeWorkloadAPI: grpc.ServiceClientConstructor;
    };
    const server = new grpc.Server();
    const agent = new FakeSpireAgent(server, dir, path);
    const denied = (call: grpc.ServerWritableStream<unknown, unknown>): boolean => {
      if (call.metadata.get("workload.spiffe.io")[0] === "true") return false;
      agent.denied++;
      call.emit("error", {
        code: grpc.status.PERMISSION_DENIED,
        details: "security header missing from request",
      });
      agent.emit("denied");
      return true;
    };
    server.addService(pkg.SpiffeWorkloadAPI.service, {
      FetchX509SVID: (call: grpc.ServerWritableStream<unknown, X509SvidResponse>) => {
        if (denied(call)) return;
        agent.calls++;
        agent.#streams.add(call);
        call.on("cancelled", () => agent.#streams.delete(call));
        call.on("close", () => agent.#streams.delete(call));
        if (agent.#response) call.write(agent.#response);
        agent.emit("stream");
      },
      FetchX509Bundles: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        if (denied(call)) return;
        agent.#bundleStreams.add(call);
        call.on("cancelled", () => agent.#bundleStreams.delete(call));
        call.on("close", () => agent.#bundleStreams.delete(call));
        if (agent.#response) call.write(bundlesOf(agent.#response));
        agent.emit("stream");
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    return agent;
  }

  /** Open FetchX509SVID streams (FetchX509Bundles ones are not counted). */
  get openStreams(): number {
    return this.#streams.size;
  }

  /** Sets the response new callers get and sends it on every open stream. */
  send(response: X509SvidResponse): void {
    this.#response = response;
    for (const call of this.#streams) call.write(response);
    for (const call of this.#bundleStreams) call.write(bundlesOf(response));
  }

  /** Resolves when the next FetchX509SVID call has been accepted. */
  nextStream(): Promise<unknown> {
    return once(this, "stream");
  }

  /** Ends every open stream: with status OK (`end`) or with UNAVAILABLE (`fail`). */
  drop(how: "end" | "fail" = "fail"): void {
    for (const call of [...this.#streams, ...this.#bundleStreams]) {
      if (how === "end") call.end();
      else call.emit("error", { code: grpc.status.UNAVAILABLE, details: "agent restarting" });
    }
    this.#streams.clear();
    this.#bundleStreams.clear();
  }

  /** Stops the server and removes its temp dir. */
  async close(): Promise<void> {
    this.drop("end");
    this.#server.forceShutdown();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
