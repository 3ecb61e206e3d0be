import { MeshError } from "@mesh/core";
/**
 * `mesh-orig-proto`: how an HTTP/1.x request from an application travels between two
 * proxies over one multiplexed HTTP/2 connection and comes out as HTTP/1.x again (the
 * role of Linkerd's `l5d-orig-proto`). Values: `HTTP/1.1`, `HTTP/1.0`, optionally
 * followed by `; absolute-form` when the app sent an absolute-form request target
 * (`GET http://host/path`, as `HTTP_PROXY` clients do).
 *
 * @public
 */
export const ORIG_PROTO_HEADER = "mesh-orig-proto";

/** The original protocol of a request carried over HTTP/2. @public */
export interface OrigProto {
  version: "HTTP/1.1" | "HTTP/1.0";
  /** The request target was absolute-form. */
  absoluteForm: boolean;
}

/** A header record as node and undici use them (lowercase names expected). @public */
export type HeaderRecord = Record<string, string | string[] | undefined>;

/**
 * Raised when an incoming `mesh-orig-proto` value is not one this proxy wrote.
 * `code` is `MESH_PROXY_ORIG_PROTO_INVALID` (answer 400).
 *
 * @public
 */
export class OrigProtoError extends MeshError<"MESH_PROXY_ORIG_PROTO_INVALID"> {
  constructor(value: unknown) {
    super(
      "MESH_PROXY_ORIG_PROTO_INVALID",
      `${ORIG_PROTO_HEADER}: expected "HTTP/1.1" or "HTTP/1.0", optionally followed by "; absolute-form", got ${JSON.stringify(value)}`,
    );
    this.name = "OrigProtoError";
  }
}

const ABSOLUTE = "; absolute-form";

/** Renders an {@link OrigProto} as a header value. @public */
export function formatOrigProto(proto: OrigProto): string {
  return proto.absoluteForm ? proto.version + ABSOLUTE : proto.version;
}

/**
 * Parses a header value (surrounding spaces allowed, otherwise exact).
 *
 * @throws OrigProtoError for anything else.
 * @public
 */
export function parseOrigProto(value: string): OrigProto {
  const v = value.trim();
  const absoluteForm = v.endsWith(ABSOLUTE);
  const version = absoluteForm ? v.slice(0, -ABSOLUTE.length) : v;
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") throw new OrigProtoError(value);
  return { version, absoluteForm };
}

/**
 * Headers that only make sense on one HTTP/1 connection and are forbidden in HTTP/2
 * (RFC 9113 §8.2.2), besides those named in `connection`.
 */
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Whether an HTTP/1 request can be carried over HTTP/2 at all: not `CONNECT`, and no
 * protocol upgrade (WebSocket etc., which need the HTTP/1 connection itself).
 *
 * @public
 */
export function canCarryOverH2(method: string, headers: HeaderRecord): boolean {
  if (method.toUpperCase() === "CONNECT") return false;
  if (headers.upgrade !== undefined) return false;
  const conn = headers.connection;
  const text = Array.isArray(conn) ? conn.join(",") : conn;
  return text === undefined || !/(^|,)\s*upgrade\s*(,|$)/i.test(text);
}

/**
 * Outbound side: the headers to send on HTTP/2 for an HTTP/1.x request. Returns a new
 * record: connection-specific headers removed (`connection` and the headers it names,
 * `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`, and `te` unless it
 * asks for `trailers`), and `mesh-orig-proto` set. The input is not modified.
 *
 * @param httpVersion - the request's `httpVersion` (`"1.1"` or `"1.0"`).
 * @param absoluteForm - the request target was absolute-form.
 * @throws RangeError for another version (HTTP/2 requests need no conversion).
 * @public
 */
export function encodeOrigProto(
  headers: HeaderRecord,
  httpVersion: string,
  absoluteForm = false,
): HeaderRecord {
  if (httpVersion !== "1.1" && httpVersion !== "1.0")
    throw new RangeError(
      `httpVersion: expected "1.1" or "1.0", got ${JSON.stringify(httpVersion)}`,
    );
  const named = new Set<string>();
  const conn = headers.connection;
  if (conn !== undefined)
    for (const part of (Array.isArray(conn) ? conn.join(",") : conn).split(","))
      if (part.trim() !== "") named.add(part.trim().toLowerCase());
  const out: HeaderRecord = {};
  for (const key in headers) {
    const value = headers[key];
    if (value === undefined) continue;
    const name = key.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || named.has(name) || name === ORIG_PROTO_HEADER) continue;
    if (name === "te") {
      const te = Array.isArray(value) ? value.join(",") : value;
      if (/(^|,)\s*trailers\s*(;|,|$)/i.test(te)) out.te = "trailers";
      continue;
    }
    out[key] = value;
  }
  out[ORIG_PROTO_HEADER] = formatOrigProto({
    version: httpVersion === "1.0" ? "HTTP/1.0" : "HTTP/1.1",
    absoluteForm,
  });
  return out;
}

/** The result of {@link decodeOrigProto}. @public */
export interface DecodedOrigProto {
  /** The original protocol, or `undefined` when the request was HTTP/2 from the start. */
  proto: OrigProto | undefined;
  /** The headers without `mesh-orig-proto` (a new record; the input is not modified). */
  headers: HeaderRecord;
}

/**
 * Inbound side: reads and removes `mesh-orig-proto` from an HTTP/2 request's headers.
 * With a result, forward to the app as HTTP/`proto.version` (absolute-form target when
 * `proto.absoluteForm`, see {@link requestTarget}).
 *
 * @throws OrigProtoError when the header is present but invalid (or repeated).
 * @public
 */
export function decodeOrigProto(headers: HeaderRecord): DecodedOrigProto {
  const value = headers[ORIG_PROTO_HEADER];
  if (value === undefined) return { proto: undefined, headers };
  if (Array.isArray(value)) throw new OrigProtoError(value.join(", "));
  const proto = parseOrigProto(value);
  const out: HeaderRecord = {};
  for (const key in headers) if (key !== ORIG_PROTO_HEADER) out[key] = headers[key];
  return { proto, headers: out };
}

/**
 * The HTTP/1 request target to send to the app: `path` (origin-form), or
 * `http://<authority><path>` when the original request was absolute-form.
 *
 * @public
 */
export function requestTarget(
  proto: OrigProto | undefined,
  authority: string,
  path: string,
): string {
  return proto?.absoluteForm ? `http://${authority}${path}` : path;
}
