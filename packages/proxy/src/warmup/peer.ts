/**
 * The far side of the warm-up, run in a child process so that the proxy's process only
 * ever runs its own side of each connection (see warmup.ts for why that matters).
 *
 * {@link warmupPeerMain} is started as `node -e "(<its source>)()"`: it must stay
 * self-contained — no imports, no references outside its body, built-ins only through
 * `process.getBuiltinModule` — so its source text runs on its own in the child, from the
 * package's dist and from the image's single-file bundle alike.
 */

/** Parent → child: what to serve. */
export interface PeerStart {
  type: "start";
  /** The proxy's SVID (PEM), when the mesh hop is mTLS; kept in memory only. */
  tls: { cert: string; key: string; ca: string } | null;
}

/** Child → parent: where it serves. */
export interface PeerListening {
  type: "listening";
  /** HTTP/1.1 app that answers `ok` (the private inbound's app). */
  appPort: number;
  /** The peer inbound for the private outbound: mTLS HTTP/2 and HTTP/1.1, or plain HTTP/1.1. */
  peerPort: number;
}

/** Parent → child: send this traffic. */
export interface PeerDrive {
  type: "drive";
  /** The private outbound (HTTP/1.1 in), if the proxy has an outbound side. */
  outboundPort: number | null;
  /** The private inbound, if the proxy has an inbound side. */
  inboundPort: number | null;
  /** How the mesh hop carries HTTP/1: `h2` (with mesh-orig-proto) or `http1`. */
  meshHttp1: "h2" | "http1";
  /** HTTP/1 requests per side. */
  requests: number;
  /** Requests in flight per side. */
  concurrency: number;
  /** The authority the private outbound routes. */
  authority: string;
}

/** Child → parent: requests answered so far. */
export interface PeerProgress {
  type: "progress";
  outbound: number;
  inbound: number;
}

/** Child → parent: what the traffic did. */
export interface PeerDone {
  type: "done";
  outbound: number;
  inbound: number;
  failed: number;
  error: string | null;
}

export type PeerMessage = PeerStart | PeerDrive;

/** The child's program (see the module comment: self-contained on purpose). */
export function warmupPeerMain(): void {
  const http = process.getBuiltinModule("node:http");
  const https = process.getBuiltinModule("node:https");
  const http2 = process.getBuiltinModule("node:http2");
  const send = (m: unknown): void => {
    process.send?.(m);
  };
  const ok = (
    req: import("node:stream").Readable,
    res: {
      writeHead(status: number, headers: Record<string, string>): unknown;
      end(b: string): unknown;
    },
  ): void => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "3" });
      res.end("ok\n");
    });
  };
  let tlsFiles: { cert: string; key: string; ca: string } | null = null;
  const body = "x".repeat(256);

  /** Sends `n` requests, `c` at a time, through `one`; counts successes into `done`. */
  const run = async (
    n: number,
    c: number,
    one: (i: number) => Promise<number>,
    done: (status: number) => void,
  ): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        const i = next++;
        done(await one(i));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(c, n)) }, worker));
  };

  /** One HTTP/1.1 request on a keep-alive agent (mostly GETs, every fourth a POST with a body). */
  const h1Request = (
    mod: typeof http | typeof https,
    agent: import("node:http").Agent,
    port: number,
    authority: string,
    i: number,
  ): Promise<number> =>
    new Promise((resolve, reject) => {
      const post = i % 4 === 3;
      const req = mod.request(
        {
          host: "127.0.0.1",
          port,
          agent,
          method: post ? "POST" : "GET",
          path: post ? "/warmup/post" : "/warmup",
          headers: { host: authority, ...(post ? { "content-length": body.length } : {}) },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(post ? body : undefined);
    });

  /** One request on an HTTP/2 session, shaped as a peer outbound sends HTTP/1 across the mesh. */
  const h2Request = (
    session: import("node:http2").ClientHttp2Session,
    authority: string,
    i: number,
  ): Promise<number> =>
    new Promise((resolve, reject) => {
      const post = i % 4 === 3;
      const stream = session.request(
        {
          ":method": post ? "POST" : "GET",
          ":path": post ? "/warmup/post" : "/warmup",
          ":authority": authority,
          "mesh-orig-proto": "HTTP/1.1",
        },
        { endStream: !post },
      );
      let status = 0;
      stream.on("response", (h) => {
        status = Number(h[":status"]);
      });
      stream.on("error", reject);
      stream.resume();
      stream.on("end", () => resolve(status));
      if (post) stream.end(body);
    });

  const drive = async (m: PeerDrive): Promise<void> => {
    const result: PeerDone = { type: "done", outbound: 0, inbound: 0, failed: 0, error: null };
    const count = (side: "outbound" | "inbound") => (status: number) => {
      if (status !== 200)
        throw new Error(`warm-up request through the ${side} side answered ${status}`);
      result[side]++;
      // Progress now and then, so a warm-up cut by its time budget still reports its work.
      if ((result.outbound + result.inbound) % 200 === 0)
        send({ type: "progress", outbound: result.outbound, inbound: result.inbound });
    };
    const closers: Array<() => void> = [];
    /** An mTLS HTTP/2 session to a private inbound, closed with the drive. */
    const mtlsSession = (
      port: number,
      tls: { cert: string; key: string; ca: string },
    ): import("node:http2").ClientHttp2Session => {
      const session = http2.connect(`https://127.0.0.1:${port}`, {
        ...tls,
        minVersion: "TLSv1.3",
        // The inbound's SVID names a SPIFFE ID, not 127.0.0.1; its chain is still verified.
        checkServerIdentity: () => undefined,
      });
      session.on("error", () => {});
      closers.push(() => session.destroy());
      return session;
    };
    const sides: Promise<void>[] = [];
    if (m.outboundPort !== null) {
      const port = m.outboundPort;
      const agent = new http.Agent({ keepAlive: true, maxSockets: m.concurrency });
      closers.push(() => agent.destroy());
      sides.push(
        run(
          m.requests,
          m.concurrency,
          (i) => h1Request(http, agent, port, m.authority, i),
          count("outbound"),
        ),
      );
    }
    if (m.inboundPort !== null) {
      const port = m.inboundPort;
      const tls = tlsFiles;
      if (tls !== null && m.meshHttp1 === "h2") {
        const session = mtlsSession(port, tls);
        sides.push(
          run(
            m.requests,
            m.concurrency,
            (i) => h2Request(session, m.authority, i),
            count("inbound"),
          ),
        );
      } else {
        const agent =
          tls === null
            ? new http.Agent({ keepAlive: true, maxSockets: m.concurrency })
            : new https.Agent({
                keepAlive: true,
                maxSockets: m.concurrency,
                ...tls,
                minVersion: "TLSv1.3",
                ALPNProtocols: ["http/1.1"],
                checkServerIdentity: () => undefined,
              });
        closers.push(() => agent.destroy());
        sides.push(
          run(
            m.requests,
            m.concurrency,
            (i) => h1Request(tls === null ? http : https, agent, port, m.authority, i),
            count("inbound"),
          ),
        );
      }
    }
    try {
      await Promise.all(sides);
    } catch (err) {
      result.failed++;
      result.error = err instanceof Error ? err.message : String(err);
    }
    for (const close of closers) close();
    send(result);
  };

  process.on("message", (m: PeerMessage) => {
    if (m.type === "drive") {
      void drive(m);
      return;
    }
    tlsFiles = m.tls;
    const app = http.createServer({ keepAliveTimeout: 60_000 }, ok);
    const peer =
      m.tls === null
        ? app
        : http2.createSecureServer(
            {
              ...m.tls,
              minVersion: "TLSv1.3",
              requestCert: true,
              rejectUnauthorized: true,
              allowHTTP1: true,
            },
            ok,
          );
    const port = (server: { address(): unknown }): number =>
      (server.address() as import("node:net").AddressInfo).port;
    const listen = (server: import("node:net").Server): Promise<void> =>
      new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    void Promise.all([listen(app), peer === app ? undefined : listen(peer)]).then(() =>
      send({ type: "listening", appPort: port(app), peerPort: port(peer) }),
    );
  });
  // The parent owns this process: when it goes away, so does the peer.
  process.on("disconnect", () => process.exit(0));
}
