import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** A node:http server on 127.0.0.1, port 0. */
export interface TestServer {
  origin: string;
  server: http.Server;
  close(): Promise<void>;
}

/** Starts a node:http server on 127.0.0.1:0 with `handler`. */
export async function serve(handler: http.RequestListener): Promise<TestServer> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Resolves once `check()` holds, polling once per event-loop turn (bounded by the test timeout). */
export function waitFor(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => (check() ? resolve() : setImmediate(poll));
    poll();
  });
}

export const sha256 = (data: string | Buffer): string =>
  createHash("sha256").update(data).digest("hex");
