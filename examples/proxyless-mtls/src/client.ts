/**
 * The part to copy into your own app: a meshed client without a sidecar. It gets its own
 * SVID from the mesh's issuer, keeps it renewed, and opens mTLS connections that present
 * it and accept only the expected server identity.
 */
import { SvidSource, undiciConnector } from "@mesh/tls-identity";
import { Agent } from "undici";

/** Where the client gets its identity, and whom it expects to talk to. */
export interface MeshClientOptions {
  /** The issuer's URL (`POST /v1/svid`), e.g. `http://127.0.0.1:8081`. */
  issuer: string;
  /** This client's SPIFFE ID, e.g. `spiffe://demo.mesh/ns/demo/sa/client`. */
  id: string;
  /** The bearer token the issuer knows this workload by. */
  token: string;
  /** The SPIFFE ID the server (its sidecar) must prove, e.g. `.../sa/books`. */
  server: string;
}

/** An undici dispatcher that speaks mTLS as `id`, and the identity source behind it. */
export interface MeshClient {
  readonly dispatcher: Agent;
  readonly identity: SvidSource;
  close(): Promise<void>;
}

/** Gets an SVID from the issuer (resolves once it is held) and returns an mTLS dispatcher. */
export async function meshClient(o: MeshClientOptions): Promise<MeshClient> {
  // Key + CSR + bearer token -> SVID from the issuer; renewed at 70 % of its lifetime.
  const identity = SvidSource.fromIssuer({ url: o.issuer, spiffeId: o.id, token: o.token });
  // Failed attempts are retried (1 s doubling to 30 s): say why, or a bad token looks slow.
  identity.on("refresh-failed", ({ error, retryInMs }) =>
    console.error(`${o.id}: SVID request failed (${error.message}); retry in ${retryInMs} ms`),
  );
  await identity.ready();
  // Each new connection: TLS 1.3 with the current SVID; the server must prove `o.server`.
  const dispatcher = new Agent({
    allowH2: true,
    connect: undiciConnector(identity, { expect: o.server, allowH2: true }),
  });
  return {
    dispatcher,
    identity,
    async close() {
      await dispatcher.close();
      identity.close();
    },
  };
}
