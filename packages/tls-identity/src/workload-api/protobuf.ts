import { IdentityError } from "../errors.js";

/**
 * The few messages of the SPIFFE Workload API (`workload.proto`) this package reads, decoded
 * by hand: they are all strings, bytes, repeated fields and `map<string, bytes>`, which is a
 * small subset of protobuf's wire format. Unknown fields are skipped, as protobuf requires,
 * so a newer agent's additions do not break an older client.
 */

/** `X509SVID` of workload.proto. */
export interface X509SvidMessage {
  /** Field 1, `spiffe_id`. */
  spiffeId: string;
  /** Field 2, `x509_svid`: ASN.1 DER certificates, leaf first, concatenated. */
  x509Svid: Buffer;
  /** Field 3, `x509_svid_key`: the private key, PKCS#8 DER. */
  x509SvidKey: Buffer;
  /** Field 4, `bundle`: ASN.1 DER CA certificates of the SVID's trust domain, concatenated. */
  bundle: Buffer;
  /** Field 5, `hint`: an operator-chosen label telling SVIDs apart (may be empty). */
  hint: string;
}

/** `X509SVIDResponse` of workload.proto. */
export interface X509SvidResponseMessage {
  /** Field 1, `svids`. The first one is the default SVID. */
  svids: X509SvidMessage[];
  /** Field 2, `crl`: DER CRLs (read, not used). */
  crl: Buffer[];
  /** Field 3, `federated_bundles`: trust domain → DER CA certificates, concatenated. */
  federatedBundles: Map<string, Buffer>;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

function malformed(what: string, detail: string): IdentityError {
  return new IdentityError(
    "MESH_IDENTITY_WORKLOAD_API_INVALID",
    `${what}: malformed protobuf (${detail})`,
  );
}

/** A cursor over one protobuf message. */
class Reader {
  #pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.#pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.buf.length) throw malformed(this.what, "truncated varint");
      const b = this.buf[this.#pos++] as number;
      // Field numbers and lengths fit in 2^53; larger varints (only possible in int64 fields
      // we skip) lose precision harmlessly.
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return result;
    }
    throw malformed(this.what, "varint longer than 10 bytes");
  }

  bytes(): Buffer {
    const len = this.varint();
    const end = this.#pos + len;
    if (end > this.buf.length)
      throw malformed(
        this.what,
        `a field of ${len} bytes runs past the end (${this.buf.length - this.#pos} left)`,
      );
    const out = this.buf.subarray(this.#pos, end);
    this.#pos = end;
    return out;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_LEN) this.bytes();
    else if (wire === WIRE_I64 || wire === WIRE_I32) {
      const n = wire === WIRE_I64 ? 8 : 4;
      if (this.#pos + n > this.buf.length) throw malformed(this.what, "truncated fixed field");
      this.#pos += n;
    } else throw malformed(this.what, `unsupported wire type ${wire}`);
  }

  /** Reads a tag; returns field number and wire type. */
  tag(): [field: number, wire: number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field === 0) throw malformed(this.what, "field number 0");
    return [field, t & 7];
  }
}

function expectLen(what: string, field: string, wire: number): void {
  if (wire !== WIRE_LEN)
    throw malformed(what, `${field} has wire type ${wire}, expected 2 (length-delimited)`);
}

function utf8(what: string, buf: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw malformed(what, "a string field is not valid UTF-8");
  }
}

function decodeSvid(buf: Buffer, what: string): X509SvidMessage {
  const r = new Reader(buf, what);
  const m: X509SvidMessage = {
    spiffeId: "",
    x509Svid: Buffer.alloc(0),
    x509SvidKey: Buffer.alloc(0),
    bundle: Buffer.alloc(0),
    hint: "",
  };
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field >= 1 && field <= 5) {
      const name = ["spiffe_id", "x509_svid", "x509_svid_key", "bundle", "hint"][field - 1];
      expectLen(what, name as string, wire);
      const b = r.bytes();
      if (field === 1) m.spiffeId = utf8(`${what}.spiffe_id`, b);
      else if (field === 2) m.x509Svid = b;
      else if (field === 3) m.x509SvidKey = b;
      else if (field === 4) m.bundle = b;
      else m.hint = utf8(`${what}.hint`, b);
    } else r.skip(wire);
  }
  return m;
}

/** A `map<string, bytes>` entry (key = 1, value = 2). */
function decodeMapEntry(buf: Buffer, what: string): [string, Buffer] {
  const r = new Reader(buf, what);
  let key = "";
  let value: Buffer = Buffer.alloc(0);
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expectLen(what, "key", wire);
      key = utf8(`${what}.key`, r.bytes());
    } else if (field === 2) {
      expectLen(what, "value", wire);
      value = r.bytes();
    } else r.skip(wire);
  }
  return [key, value];
}

/**
 * Decodes an `X509SVIDResponse`.
 *
 * @throws IdentityError `MESH_IDENTITY_WORKLOAD_API_INVALID` naming the message or field
 *   that does not decode.
 */
export function decodeX509SvidResponse(buf: Buffer): X509SvidResponseMessage {
  const what = "X509SVIDResponse";
  const r = new Reader(buf, what);
  const out: X509SvidResponseMessage = { svids: [], crl: [], federatedBundles: new Map() };
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expectLen(what, "svids", wire);
      out.svids.push(decodeSvid(r.bytes(), `${what}.svids[${out.svids.length}]`));
    } else if (field === 2) {
      expectLen(what, "crl", wire);
      out.crl.push(r.bytes());
    } else if (field === 3) {
      expectLen(what, "federated_bundles", wire);
      // Later entries for the same key win, as protobuf's map semantics say.
      const [k, v] = decodeMapEntry(r.bytes(), `${what}.federated_bundles`);
      out.federatedBundles.set(k, v);
    } else r.skip(wire);
  }
  return out;
}

/** `X509BundlesResponse` of workload.proto. */
export interface X509BundlesResponseMessage {
  /** Field 1, `crl`: DER CRLs (read, not used). */
  crl: Buffer[];
  /** Field 2, `bundles`: trust domain → DER CA certificates, concatenated. */
  bundles: Map<string, Buffer>;
}

/**
 * Decodes an `X509BundlesResponse`.
 *
 * @throws IdentityError `MESH_IDENTITY_WORKLOAD_API_INVALID` naming the field that does not
 *   decode.
 */
export function decodeX509BundlesResponse(buf: Buffer): X509BundlesResponseMessage {
  const what = "X509BundlesResponse";
  const r = new Reader(buf, what);
  const out: X509BundlesResponseMessage = { crl: [], bundles: new Map() };
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expectLen(what, "crl", wire);
      out.crl.push(r.bytes());
    } else if (field === 2) {
      expectLen(what, "bundles", wire);
      const [k, v] = decodeMapEntry(r.bytes(), `${what}.bundles`);
      out.bundles.set(k, v);
    } else r.skip(wire);
  }
  return out;
}
