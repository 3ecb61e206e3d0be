import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** Demo upstreams the gateway starts when `UPSTREAMS` is not set. */
export interface DemoUpstreams {
  /** `127.0.0.1:port` of each. */
  addresses: string[];
  close(): Promise<void>;
}

/**
 * Starts `count` small upstreams on 127.0.0.1 (ephemeral ports). Each answers JSON with
 * its name, the method, path and the headers it received; a request body is echoed back
 * streamed, byte for byte.
 */
export async function startDemoUpstreams(count = 3): Promise<DemoUpstreams> {
  const servers: Server[] = [];
  for (let i = 0; i < count; i++) {
    const name = `demo-${i + 1}`;
    const server = createServer((req, res) => {
      if (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"]) {
        res.writeHead(200, { "content-type": "application/octet-stream", "x-upstream": name });
        req.pipe(res);
        return;
      }
      const body = JSON.stringify({ upstream: name, method: req.method, path: req.url });
      res.writeHead(200, { "content-type": "application/json", "x-upstream": name });
      res.end(body);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    servers.push(server);
  }
  return {
    addresses: servers.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`),
    close: () =>
      Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeIdleConnections();
            }),
        ),
      ).then(() => {}),
  };
}
