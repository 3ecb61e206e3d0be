import { connect as netConnect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeTransportHeader,
  encodeTransportHeader,
  TRANSPORT_HEADER_MAX_BYTES,
  TransportHeaderError,
} from "../../src/transport/transport-header/header.js";
import { readTransportHeader } from "../../src/transport/transport-header/read.js";
import { RawListener, readAll } from "./helpers.js";

const protocolArb = fc.stringMatching(/^[a-z0-9._+/-]{1,32}$/);
const headerArb = fc.record(
  {
    port: fc.integer({ min: 1, max: 65535 }),
    protocol: protocolArb,
    name: fc.string({ minLength: 1, maxLength: 60 }),
  },
  { requiredKeys: ["port", "protocol"] },
);

function invalidAt(buf: Uint8Array): TransportHeaderError {
  try {
    decodeTransportHeader(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(TransportHeaderError);
    expect((err as TransportHeaderError).code).toBe("MESH_TRANSPORT_HEADER_INVALID");
    return err as TransportHeaderError;
  }
  throw new Error("expected the header to be rejected");
}

describe("transport header encoding", () => {
  it("round-trips every valid header, and any payload after it is untouched", () => {
    fc.assert(
      fc.property(headerArb, fc.uint8Array({ maxLength: 64 }), (header, payload) => {
        const bytes = encodeTransportHeader(header);
        expect(bytes.length).toBeLessThanOrEqual(TRANSPORT_HEADER_MAX_BYTES);
        const decoded = decodeTransportHeader(Buffer.concat([bytes, payload]));
        expect(decoded).toEqual({ header, length: bytes.length });
      }),
    );
  });

  it("asks for more bytes on every strict prefix of a valid header", () => {
    fc.assert(
      fc.property(headerArb, (header) => {
        const bytes = encodeTransportHeader(header);
        for (let n = 0; n < bytes.length; n++)
          expect(decodeTransportHeader(bytes.subarray(0, n))).toBeUndefined();
      }),
    );
  });

  it("rejects a wrong magic or version byte at that byte", () => {
    fc.assert(
      fc.property(
        headerArb,
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 255 }),
        (header, at, value) => {
          const bytes = encodeTransportHeader(header);
          fc.pre(bytes[at] !== value);
          bytes[at] = value;
          const err = invalidAt(bytes.subarray(0, at + 1)); // reported as soon as the byte arrives
          expect(err.offset).toBe(at);
          expect(err.message).toMatch(
            new RegExp(`^transport header byte ${at}: expected (magic byte|version 1)`),
          );
        },
      ),
    );
  });

  it("rejects a fields length that is too small or too large", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1025, max: 65535 })),
        (len) => {
          const bytes = Buffer.from([0x89, 0x4d, 0x54, 0x48, 1, len >> 8, len & 255]);
          expect(invalidAt(bytes).offset).toBe(5);
        },
      ),
    );
  });

  it("rejects unknown critical field types, accepts and skips extensions ≥ 0x80", () => {
    fc.assert(
      fc.property(
        headerArb,
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 20 }),
        (header, type, value) => {
          fc.pre(type > 3);
          const base = encodeTransportHeader(header);
          const field = Buffer.from([type, value.length, ...value]);
          const fieldsLength = base.readUInt16BE(5) + field.length;
          const bytes = Buffer.concat([base, field]);
          bytes.writeUInt16BE(fieldsLength, 5);
          if (type >= 0x80) expect(decodeTransportHeader(bytes)?.header).toEqual(header);
          else expect(invalidAt(bytes).offset).toBe(base.length);
        },
      ),
    );
  });

  it("rejects field lengths that overrun the header, duplicates, bad ports and protocol bytes", () => {
    const good = encodeTransportHeader({ port: 5432, protocol: "opaque" });
    // port field (type at 7, length at 8, value at 9..10), protocol field at 11
    const cases: Array<[string, (b: Buffer) => void, number]> = [
      [
        "port length 3",
        (b) => {
          b[8] = 3;
        },
        8,
      ],
      [
        "port 0",
        (b) => {
          b[9] = 0;
          b[10] = 0;
        },
        9,
      ],
      [
        "protocol length past the end",
        (b) => {
          b[12] = 200;
        },
        12,
      ],
      [
        "protocol byte uppercase",
        (b) => {
          b[13] = 0x4f;
        },
        13,
      ],
      [
        "protocol byte space",
        (b) => {
          b[15] = 0x20;
        },
        15,
      ],
      [
        "second port field",
        (b) => {
          b[11] = 0x01;
          b[12] = 2;
        },
        11,
      ],
    ];
    for (const [, mutate, offset] of cases) {
      const b = Buffer.from(good);
      mutate(b);
      expect(invalidAt(b).offset).toBe(offset);
    }
    const noPort = Buffer.from([0x89, 0x4d, 0x54, 0x48, 1, 0, 4, 0x02, 2, 0x61, 0x62]);
    expect(invalidAt(noPort).message).toBe(
      "transport header byte 7: expected a port field in the fields section, got none",
    );
  });

  it("fuzz: arbitrary bytes either decode, ask for more, or fail with a byte offset", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (random, withMagic) => {
        const bytes = withMagic
          ? Buffer.concat([Buffer.from([0x89, 0x4d, 0x54, 0x48, 1]), random])
          : Buffer.from(random);
        try {
          const r = decodeTransportHeader(bytes);
          if (r) expect(r.length).toBeLessThanOrEqual(bytes.length);
        } catch (err) {
          expect(err).toBeInstanceOf(TransportHeaderError);
          const e = err as TransportHeaderError;
          expect(e.offset).toBeGreaterThanOrEqual(0);
          expect(e.offset).toBeLessThan(Math.max(bytes.length, 8));
        }
      }),
    );
  });

  it("matches the example in TRANSPORT-HEADER.md byte for byte", () => {
    expect(encodeTransportHeader({ port: 5432 }).toString("hex")).toBe(
      "894d544801000c0102153802066f7061717565",
    );
  });

  it("validates what it encodes", () => {
    expect(() => encodeTransportHeader({ port: 0 })).toThrow(
      "header.port: expected an integer in 1..65535, got 0",
    );
    expect(() => encodeTransportHeader({ port: 1, protocol: "TCP" })).toThrow(
      'header.protocol: expected 1..32 characters of a-z 0-9 . _ + / -, got "TCP"',
    );
    expect(() => encodeTransportHeader({ port: 1, name: "x".repeat(256) })).toThrow(
      "header.name: expected at most 255 UTF-8 bytes, got 256",
    );
  });
});

describe("readTransportHeader over a real socket", () => {
  let listener: RawListener;
  let port: number;
  beforeAll(async () => {
    listener = new RawListener();
    port = await listener.listen();
  });
  afterAll(() => listener.close());

  it("reads exactly the header, byte by byte, and leaves the payload", async () => {
    const header = encodeTransportHeader({ port: 6379, name: "redis.default" });
    const client = netConnect({ host: "127.0.0.1", port });
    client.setNoDelay(true);
    const server = await listener.accept();
    const reading = readTransportHeader(server);
    for (const byte of header) client.write(Buffer.from([byte]));
    client.end("*1\r\n$4\r\nPING\r\n");
    expect(await reading).toEqual({ port: 6379, protocol: "opaque", name: "redis.default" });
    expect((await readAll(server)).toString()).toBe("*1\r\n$4\r\nPING\r\n");
  });

  it("fails on the first bad byte, on truncation, and on timeout", async () => {
    const bad = netConnect({ host: "127.0.0.1", port });
    bad.write("GET / HTTP/1.1\r\n");
    const s1 = await listener.accept();
    await expect(readTransportHeader(s1)).rejects.toMatchObject({
      code: "MESH_TRANSPORT_HEADER_INVALID",
      offset: 0,
    });

    const short = netConnect({ host: "127.0.0.1", port });
    short.end(encodeTransportHeader({ port: 80 }).subarray(0, 9));
    const s2 = await listener.accept();
    await expect(readTransportHeader(s2)).rejects.toMatchObject({
      code: "MESH_TRANSPORT_HEADER_TRUNCATED",
      offset: 9,
    });

    const silent = netConnect({ host: "127.0.0.1", port });
    const s3 = await listener.accept();
    await expect(readTransportHeader(s3, { timeoutMs: 30 })).rejects.toMatchObject({
      code: "MESH_TRANSPORT_HEADER_TIMEOUT",
    });
    for (const s of [bad, short, silent]) s.destroy();
  });
});
