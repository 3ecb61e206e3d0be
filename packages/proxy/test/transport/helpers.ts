import { once } from "node:events";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { createTrustAnchor, type IdentityMaterial, TrustBundle } from "@mesh/tls-identity";

/** A raw TCP listener on 127.0.0.1:0 whose accepted sockets are handed out in order. */
export class RawListener {
  readonly server: Server;
  readonly #queue: Socket[] = [];
  readonly #waiters: Array<(s: Socket) => void> = [];
  readonly #all = new Set<Socket>();
  constructor() {
    this.server = createServer({ pauseOnConnect: true }, (s) => {
      s.on("error", () => {});
      this.#all.add(s);
      s.on("close", () => this.#all.delete(s));
      const w = this.#waiters.shift();
      if (w) w(s);
      else this.#queue.push(s);
    });
  }
  async listen(): Promise<number> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return (this.server.address() as AddressInfo).port;
  }
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  accept(): Promise<Socket> {
    const s = this.#queue.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  close(): Promise<void> {
    for (const s of this.#all) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Two trust domains' CAs and a helper to mint SVID material. */
export function makePki() {
  const ca = createTrustAnchor({ trustDomain: "example.org" }).createAuthority();
  const rogue = createTrustAnchor({ trustDomain: "example.org" }).createAuthority();
  const material = (id: string, authority = ca): IdentityMaterial => ({
    svid: authority.issue(id),
    bundle: authority === ca ? ca.bundle : TrustBundle.fromPem(authority.bundle.pem),
  });
  return { ca, rogue, material };
}

/** Reads everything from a socket until it ends. */
export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Resolves once `s` has received at least `n` bytes in total (spying on 'data'). */
export function byteCounter(s: Socket) {
  let total = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const onData = (c: Buffer) => {
    total += c.length;
    for (const w of waiters.splice(0))
      if (total >= w.n) w.resolve();
      else waiters.push(w);
  };
  s.on("data", onData);
  return {
    until(n: number): Promise<void> {
      if (total >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    stop() {
      s.off("data", onData);
    },
  };
}
