import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { isIPv4 } from "node:net";

/** Records served by {@link startDnsServer}; change them live. */
export interface Zone {
  [name: string]: {
    A?: { address: string; ttl: number }[];
    AAAA?: { address: string; ttl: number }[];
    SRV?: { priority: number; weight: number; port: number; target: string; ttl: number }[];
  };
}

const TYPES = { A: 1, AAAA: 28, SRV: 33 } as const;

/**
 * A tiny authoritative DNS server over UDP on 127.0.0.1 answering A, AAAA and SRV from `zone`
 * (NXDOMAIN for unknown names). Real wire format, so `dns.Resolver#setServers` can use it.
 */
export async function startDnsServer(
  zone: Zone,
): Promise<{ server: string; queries: number; close(): void }> {
  const socket: Socket = createSocket("udp4");
  const state = { queries: 0 };
  socket.on("message", (msg, rinfo) => {
    state.queries++;
    const { name, qtype, end } = readQuestion(msg);
    const entry = zone[name.toLowerCase()];
    const answers: Buffer[] = [];
    if (entry) {
      if (qtype === TYPES.A)
        for (const r of entry.A ?? []) answers.push(rr(TYPES.A, r.ttl, ipv4(r.address)));
      if (qtype === TYPES.AAAA)
        for (const r of entry.AAAA ?? []) answers.push(rr(TYPES.AAAA, r.ttl, ipv6(r.address)));
      if (qtype === TYPES.SRV) {
        for (const r of entry.SRV ?? []) {
          const head = Buffer.alloc(6);
          head.writeUInt16BE(r.priority, 0);
          head.writeUInt16BE(r.weight, 2);
          head.writeUInt16BE(r.port, 4);
          answers.push(rr(TYPES.SRV, r.ttl, Buffer.concat([head, encodeName(r.target)])));
        }
      }
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0);
    header.writeUInt16BE(0x8180 | (entry ? 0 : 3), 2); // QR RD RA, NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(
      Buffer.concat([header, msg.subarray(12, end), ...answers]),
      rinfo.port,
      rinfo.address,
    );
  });
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  return {
    server: `127.0.0.1:${socket.address().port}`,
    get queries() {
      return state.queries;
    },
    close: () => socket.close(),
  };
}

function readQuestion(msg: Buffer): { name: string; qtype: number; end: number } {
  const labels: string[] = [];
  let i = 12;
  while (msg[i]! !== 0) {
    const len = msg[i]!;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString("ascii"));
    i += len + 1;
  }
  i++;
  return { name: labels.join("."), qtype: msg.readUInt16BE(i), end: i + 4 };
}

function rr(type: number, ttl: number, rdata: Buffer): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0xc00c, 0); // pointer to the question name
  b.writeUInt16BE(type, 2);
  b.writeUInt16BE(1, 4);
  b.writeUInt32BE(ttl, 6);
  b.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([b, rdata]);
}

function encodeName(name: string): Buffer {
  const parts = name.split(".").filter(Boolean);
  return Buffer.concat([
    ...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])),
    Buffer.from([0]),
  ]);
}

function ipv4(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`not IPv4: ${address}`);
  return Buffer.from(address.split(".").map(Number));
}

function ipv6(address: string): Buffer {
  const [head, tail = ""] = address.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, k) => {
    b.writeUInt16BE(Number.parseInt(g, 16), k * 2);
  });
  return b;
}
