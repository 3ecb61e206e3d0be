import { createSocket } from "node:dgram";
import { isIPv6 } from "node:net";

/*
 * Node's `resolveSrv` (c-ares) returns no TTLs, so SRV answers would be refreshed on their
 * targets' A/AAAA TTLs only. This asks one DNS server for the SRV record directly, over UDP,
 * and reads the TTLs of the answer. It is used only for timing: records still come from
 * `resolveSrv`, and when this fails (timeout, truncation, a search-domain name) the caller
 * falls back to the address TTLs.
 */

const TYPE_SRV = 33;
const TYPE_CNAME = 5;

/** Parses `host`, `host:port`, `[v6]` or `[v6]:port` as printed by `Resolver#getServers()`. */
function parseDnsServer(server: string): { host: string; port: number } | undefined {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  if (bracket) return { host: bracket[1]!, port: bracket[2] ? Number(bracket[2]) : 53 };
  if (isIPv6(server)) return { host: server, port: 53 };
  const plain = /^([^:]+)(?::(\d+))?$/.exec(server);
  if (plain) return { host: plain[1]!, port: plain[2] ? Number(plain[2]) : 53 };
  return undefined;
}

/** A DNS query for `name` of type SRV with a random id, recursion desired. */
function encodeSrvQuery(name: string, id: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const labels = name.split(".").filter(Boolean);
  if (labels.some((l) => l.length > 63)) throw new RangeError(`label too long in ${name}`);
  const parts: Buffer[] = [header];
  for (const label of labels) parts.push(Buffer.from([label.length]), Buffer.from(label, "ascii"));
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(TYPE_SRV, 1);
  tail.writeUInt16BE(1, 3); // class IN
  parts.push(tail);
  return Buffer.concat(parts);
}

/** Offset just past a (possibly compressed) name starting at `at`. */
function skipName(msg: Buffer, at: number): number {
  let i = at;
  for (;;) {
    if (i >= msg.length) throw new RangeError("truncated name");
    const len = msg[i]!;
    if (len === 0) return i + 1;
    if ((len & 0xc0) === 0xc0) return i + 2;
    i += len + 1;
  }
}

/**
 * The smallest TTL (seconds) of the SRV and CNAME records in a DNS response (id checked), or
 * `undefined` when the response is truncated, an error, or has no SRV answer.
 */
function srvTtlOf(msg: Buffer): number | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) === 0 || (flags & 0x0200) !== 0 || (flags & 0x000f) !== 0) return undefined;
  const questions = msg.readUInt16BE(4);
  const answers = msg.readUInt16BE(6);
  let i = 12;
  try {
    for (let q = 0; q < questions; q++) i = skipName(msg, i) + 4;
    let ttl: number | undefined;
    let sawSrv = false;
    for (let a = 0; a < answers; a++) {
      i = skipName(msg, i);
      if (i + 10 > msg.length) return undefined;
      const type = msg.readUInt16BE(i);
      const recordTtl = msg.readUInt32BE(i + 4);
      const length = msg.readUInt16BE(i + 8);
      i += 10 + length;
      if (type !== TYPE_SRV && type !== TYPE_CNAME) continue;
      if (type === TYPE_SRV) sawSrv = true;
      if (ttl === undefined || recordTtl < ttl) ttl = recordTtl;
    }
    return sawSrv ? ttl : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Asks `server` (`host[:port]`) for the SRV records of `name` and resolves with their smallest
 * TTL in seconds, or `undefined` on any failure or after `timeoutMs`. Never rejects.
 */
export function querySrvTtl(
  name: string,
  server: string,
  timeoutMs: number,
): Promise<number | undefined> {
  const target = parseDnsServer(server);
  if (!target) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const socket = createSocket(isIPv6(target.host) ? "udp6" : "udp4");
    const id = (Math.random() * 0x10000) | 0;
    let settled = false;
    const finish = (ttl: number | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(ttl);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    timer.unref();
    socket.unref();
    socket.on("error", () => finish(undefined));
    socket.on("message", (msg, from) => {
      if (from.port !== target.port) return;
      if (msg.length >= 2 && msg.readUInt16BE(0) !== id) return;
      finish(srvTtlOf(msg));
    });
    let query: Buffer;
    try {
      query = encodeSrvQuery(name, id);
    } catch {
      finish(undefined);
      return;
    }
    socket.send(query, target.port, target.host, (err) => {
      if (err) finish(undefined);
    });
  });
}
