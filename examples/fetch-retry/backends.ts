// Three tiny replicas of one service for the example to balance over. Each counts the
// requests it received so the example can show where traffic went, retries included.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** How a demo replica behaves. */
export interface ReplicaBehaviour {
  /** Shown in the output. */
  name: string;
  /** Milliseconds before answering. */
  delayMs: number;
  /** Every `failEvery`-th request is answered 503 (5 = 20 %); 0 never fails. */
  failEvery: number;
}

/** A running demo replica. */
export interface Replica extends ReplicaBehaviour {
  /** `127.0.0.1:port`, the form `Balancer` endpoints take. */
  address: string;
  /** Requests received, retries included. */
  received: number;
  /** Requests answered 503 on purpose. */
  failed: number;
  close(): Promise<void>;
}

/** Starts one replica on 127.0.0.1 and an ephemeral port. */
export async function startReplica(behaviour: ReplicaBehaviour): Promise<Replica> {
  const server: Server = createServer((req, res) => {
    replica.received++;
    const fail = behaviour.failEvery > 0 && replica.received % behaviour.failEvery === 0;
    // Drain the request body before answering so keep-alive connections stay reusable.
    req.resume();
    req.on("end", () => {
      const answer = () => {
        if (fail) {
          replica.failed++;
          res.writeHead(503, { "content-type": "text/plain" }).end("unavailable\n");
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ replica: behaviour.name, path: req.url }));
      };
      if (behaviour.delayMs > 0) setTimeout(answer, behaviour.delayMs);
      else answer();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const replica: Replica = {
    ...behaviour,
    address: `127.0.0.1:${port}`,
    received: 0,
    failed: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return replica;
}
