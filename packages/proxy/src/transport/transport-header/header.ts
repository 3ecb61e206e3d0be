import { MeshError, typeError } from "@mesh/core";

/**
 * The fields carried at the start of an opaque-TCP stream between proxies.
 *
 * @public
 */
export interface TransportHeader {
  /** The port the client originally connected to (the target on the peer's side), 1..65535. */
  port: number;
  /**
   * The session protocol token (`a-z 0-9 . _ + / -`, 1..32 bytes). Default `opaque`
   * (raw TCP); present so new session kinds can be added without a new version.
   */
  protocol: string;
  /** Optional logical destination name (an authority, for gateways), UTF-8, ≤ 255 bytes. */
  name?: string;
}

/** `\x89MTH`: a non-ASCII first byte so no text protocol or TLS record is mistaken for it. @public */
export const TRANSPORT_HEADER_MAGIC: Readonly<Buffer> = Buffer.from([0x89, 0x4d, 0x54, 0x48]);
/** The one version defined. @public */
export const TRANSPORT_HEADER_VERSION = 1;
/** Fixed part: magic (4) + version (1) + fields length (2). @public */
export const TRANSPORT_HEADER_PREFIX_BYTES = 7;
/** Largest fields section accepted. @public */
export const TRANSPORT_HEADER_MAX_FIELDS_BYTES = 1024;
/** Largest whole header: 7 + 1024 bytes. @public */
export const TRANSPORT_HEADER_MAX_BYTES =
  TRANSPORT_HEADER_PREFIX_BYTES + TRANSPORT_HEADER_MAX_FIELDS_BYTES;

/** Field type codes. Types ≥ 0x80 are optional extensions a decoder skips. @public */
export const TransportField = { port: 0x01, protocol: 0x02, name: 0x03 } as const;

/** Stable codes of {@link TransportHeaderError}. @public */
export const transportHeaderErrorCodes = [
  "MESH_TRANSPORT_HEADER_INVALID",
  "MESH_TRANSPORT_HEADER_TRUNCATED",
  "MESH_TRANSPORT_HEADER_TIMEOUT",
] as const;

/** A stable code of {@link TransportHeaderError}. */
export type TransportHeaderErrorCode = (typeof transportHeaderErrorCodes)[number];

/**
 * A transport header could not be read. `offset` is the index of the byte at fault (for
 * `INVALID`), or how many bytes had arrived (for `TRUNCATED`/`TIMEOUT`).
 *
 * @public
 */
export class TransportHeaderError extends MeshError<TransportHeaderErrorCode> {
  readonly offset: number;
  constructor(code: TransportHeaderErrorCode, offset: number, message: string) {
    super(code, message);
    this.name = "TransportHeaderError";
    this.offset = offset;
  }
}

const PROTOCOL = /^[a-z0-9._+/-]{1,32}$/;
const hex = (b: number) => `0x${b.toString(16).padStart(2, "0")}`;
const invalid = (offset: number, what: string, got: string) =>
  new TransportHeaderError(
    "MESH_TRANSPORT_HEADER_INVALID",
    offset,
    `transport header byte ${offset}: expected ${what}, got ${got}`,
  );

/**
 * Encodes a header. Fields are written in type order: port, protocol, then name.
 *
 * @throws TypeError/RangeError `header.<field>: expected <what>, got <value>`.
 * @public
 */
export function encodeTransportHeader(header: {
  port: number;
  protocol?: string;
  name?: string;
}): Buffer {
  if (header === null || typeof header !== "object") throw typeError("header", "an object", header);
  const { port, protocol = "opaque", name } = header;
  if (typeof port !== "number") throw typeError("header.port", "an integer port", port);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new RangeError(`header.port: expected an integer in 1..65535, got ${port}`);
  if (typeof protocol !== "string" || !PROTOCOL.test(protocol))
    throw typeError("header.protocol", "1..32 characters of a-z 0-9 . _ + / -", protocol);
  let nameBytes: Buffer | undefined;
  if (name !== undefined) {
    if (typeof name !== "string" || name.length === 0)
      throw typeError("header.name", "a non-empty string", name);
    nameBytes = Buffer.from(name, "utf8");
    if (nameBytes.length > 255)
      throw new RangeError(
        `header.name: expected at most 255 UTF-8 bytes, got ${nameBytes.length}`,
      );
  }
  const fieldsLength = 4 + 2 + protocol.length + (nameBytes ? 2 + nameBytes.length : 0);
  const out = Buffer.allocUnsafe(TRANSPORT_HEADER_PREFIX_BYTES + fieldsLength);
  TRANSPORT_HEADER_MAGIC.copy(out, 0);
  out[4] = TRANSPORT_HEADER_VERSION;
  out.writeUInt16BE(fieldsLength, 5);
  let i = 7;
  out[i++] = TransportField.port;
  out[i++] = 2;
  out.writeUInt16BE(port, i);
  i += 2;
  out[i++] = TransportField.protocol;
  out[i++] = protocol.length;
  i += out.write(protocol, i, "latin1");
  if (nameBytes) {
    out[i++] = TransportField.name;
    out[i++] = nameBytes.length;
    nameBytes.copy(out, i);
  }
  return out;
}

/** A decoded header and how many bytes it took. @public */
export interface DecodedTransportHeader {
  header: TransportHeader;
  /** Bytes consumed; the payload starts at this offset. */
  length: number;
}

/**
 * Decodes a header from the start of `buf`. Returns `undefined` while `buf` is a valid
 * but incomplete prefix (read more bytes), so a caller can feed it byte by byte; bad
 * bytes are reported as soon as they are seen.
 *
 * @throws TransportHeaderError `MESH_TRANSPORT_HEADER_INVALID` naming the byte at fault.
 * @public
 */
export function decodeTransportHeader(buf: Uint8Array): DecodedTransportHeader | undefined {
  const n = buf.length;
  for (let k = 0; k < 4; k++) {
    if (k >= n) return undefined;
    if (buf[k] !== TRANSPORT_HEADER_MAGIC[k])
      throw invalid(
        k,
        `magic byte ${hex(TRANSPORT_HEADER_MAGIC[k] as number)}`,
        hex(buf[k] as number),
      );
  }
  if (n < 5) return undefined;
  if (buf[4] !== TRANSPORT_HEADER_VERSION)
    throw invalid(4, `version ${TRANSPORT_HEADER_VERSION}`, String(buf[4]));
  if (n < 7) return undefined;
  const fieldsLength = ((buf[5] as number) << 8) | (buf[6] as number);
  if (fieldsLength < 4 || fieldsLength > TRANSPORT_HEADER_MAX_FIELDS_BYTES)
    throw invalid(
      5,
      `a fields length in 4..${TRANSPORT_HEADER_MAX_FIELDS_BYTES}`,
      String(fieldsLength),
    );
  const total = TRANSPORT_HEADER_PREFIX_BYTES + fieldsLength;
  if (n < total) return undefined;
  let port: number | undefined;
  let protocol: string | undefined;
  let name: string | undefined;
  let i = TRANSPORT_HEADER_PREFIX_BYTES;
  while (i < total) {
    const type = buf[i] as number;
    if (i + 1 >= total)
      throw invalid(i + 1, "a field length inside the header", "the end of the header");
    const len = buf[i + 1] as number;
    const start = i + 2;
    const end = start + len;
    if (end > total)
      throw invalid(
        i + 1,
        `a field length ≤ ${total - start} (bytes left in the header)`,
        String(len),
      );
    switch (type) {
      case TransportField.port:
        if (port !== undefined)
          throw invalid(i, "each field once", `a second port field ${hex(type)}`);
        if (len !== 2) throw invalid(i + 1, "port field length 2", String(len));
        port = ((buf[start] as number) << 8) | (buf[start + 1] as number);
        if (port === 0) throw invalid(start, "a port in 1..65535", "0");
        break;
      case TransportField.protocol: {
        if (protocol !== undefined)
          throw invalid(i, "each field once", `a second protocol field ${hex(type)}`);
        if (len < 1 || len > 32) throw invalid(i + 1, "protocol field length 1..32", String(len));
        for (let k = start; k < end; k++) {
          const c = buf[k] as number;
          const ok =
            (c >= 0x61 && c <= 0x7a) ||
            (c >= 0x30 && c <= 0x39) ||
            c === 0x2e ||
            c === 0x5f ||
            c === 0x2b ||
            c === 0x2f ||
            c === 0x2d;
          if (!ok) throw invalid(k, "a protocol character a-z 0-9 . _ + / -", hex(c));
        }
        protocol = Buffer.from(buf.subarray(start, end)).toString("latin1");
        break;
      }
      case TransportField.name: {
        if (name !== undefined)
          throw invalid(i, "each field once", `a second name field ${hex(type)}`);
        if (len < 1) throw invalid(i + 1, "name field length 1..255", "0");
        const text = new TextDecoder("utf-8", { fatal: true });
        try {
          name = text.decode(buf.subarray(start, end));
        } catch {
          throw invalid(start, "a UTF-8 name", "invalid UTF-8");
        }
        break;
      }
      default:
        if (type < 0x80)
          throw invalid(i, "a known field type (0x01..0x03) or an extension ≥ 0x80", hex(type));
    }
    i = end;
  }
  if (port === undefined)
    throw invalid(TRANSPORT_HEADER_PREFIX_BYTES, "a port field in the fields section", "none");
  const header: TransportHeader = { port, protocol: protocol ?? "opaque" };
  if (name !== undefined) header.name = name;
  return { header, length: total };
}
