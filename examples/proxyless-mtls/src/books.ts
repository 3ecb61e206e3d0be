/**
 * The service behind the sidecar: a plain node:http app that knows nothing about TLS. It
 * answers with what it saw, including the `mesh-client-id` header its sidecar sets to the
 * caller's verified SPIFFE ID (and strips from anything a caller sends).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

/** What the books app answers with. */
export interface BooksAnswer {
  service: "books";
  method: string;
  path: string;
  /** The `mesh-client-id` header as the app received it, or null. */
  meshClientId: string | null;
  /** The HTTP version between the sidecar and the app. */
  httpVersion: string;
}

/** A running books app. */
export interface BooksApp {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  /** Requests the app has served. */
  readonly served: () => number;
  close(): Promise<void>;
}

/** Starts the books app on 127.0.0.1 (a port the OS picks). */
export async function startBooks(): Promise<BooksApp> {
  let served = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    served++;
    const clientId = req.headers["mesh-client-id"];
    const answer: BooksAnswer = {
      service: "books",
      method: req.method ?? "",
      path: req.url ?? "",
      meshClientId: typeof clientId === "string" ? clientId : null,
      httpVersion: req.httpVersion,
    };
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    served: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
