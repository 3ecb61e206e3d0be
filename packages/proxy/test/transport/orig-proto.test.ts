import { describe, expect, it } from "vitest";
import { setClientIdHeader, setClientIdRaw } from "../../src/transport/mtls/client-id.js";
import {
  canCarryOverH2,
  decodeOrigProto,
  encodeOrigProto,
  OrigProtoError,
  parseOrigProto,
  requestTarget,
} from "../../src/transport/orig-proto.js";

describe("mesh-orig-proto", () => {
  it("encodes an HTTP/1.1 request for HTTP/2: header set, connection-specific headers gone", () => {
    const input = {
      host: "books:8080",
      connection: "keep-alive, x-hop",
      "keep-alive": "timeout=5",
      "proxy-connection": "keep-alive",
      "transfer-encoding": "chunked",
      te: "gzip, trailers",
      "x-hop": "1",
      "x-app": ["a", "b"],
      "mesh-orig-proto": "HTTP/1.0",
    };
    const out = encodeOrigProto(input, "1.1");
    expect(out).toEqual({
      host: "books:8080",
      te: "trailers",
      "x-app": ["a", "b"],
      "mesh-orig-proto": "HTTP/1.1",
    });
    expect(input.connection).toBe("keep-alive, x-hop"); // input untouched
    expect(encodeOrigProto({ te: "gzip" }, "1.0", true)).toEqual({
      "mesh-orig-proto": "HTTP/1.0; absolute-form",
    });
    expect(() => encodeOrigProto({}, "2.0")).toThrow(
      'httpVersion: expected "1.1" or "1.0", got "2.0"',
    );
  });

  it("decodes on the inbound side and drops the header", () => {
    const { proto, headers } = decodeOrigProto({
      ":path": "/a",
      "mesh-orig-proto": "HTTP/1.1; absolute-form",
      x: "1",
    });
    expect(proto).toEqual({ version: "HTTP/1.1", absoluteForm: true });
    expect(headers).toEqual({ ":path": "/a", x: "1" });
    expect(requestTarget(proto, "books:8080", "/a?b")).toBe("http://books:8080/a?b");
    expect(requestTarget(undefined, "books", "/a")).toBe("/a");
    const plain = { ":path": "/" };
    expect(decodeOrigProto(plain)).toEqual({ proto: undefined, headers: plain });
  });

  it("round-trips every combination", () => {
    for (const v of ["1.1", "1.0"])
      for (const abs of [false, true]) {
        const { proto } = decodeOrigProto(encodeOrigProto({}, v, abs));
        expect(proto).toEqual({ version: `HTTP/${v}`, absoluteForm: abs });
      }
  });

  it.each(["HTTP/2", "http/1.1", "HTTP/1.1;absolute-form", "HTTP/1.1; absolute-form; x", ""])(
    "rejects %j",
    (value) => {
      expect(() => parseOrigProto(value)).toThrow(OrigProtoError);
      expect(() => decodeOrigProto({ "mesh-orig-proto": value })).toThrow(
        /^mesh-orig-proto: expected "HTTP\/1\.1" or "HTTP\/1\.0"/,
      );
    },
  );

  it("does not carry upgrades or CONNECT over HTTP/2", () => {
    expect(canCarryOverH2("GET", { connection: "keep-alive" })).toBe(true);
    expect(canCarryOverH2("GET", { connection: "Upgrade", upgrade: "websocket" })).toBe(false);
    expect(canCarryOverH2("GET", { connection: "keep-alive, upgrade" })).toBe(false);
    expect(canCarryOverH2("CONNECT", {})).toBe(false);
  });
});

describe("mesh-client-id", () => {
  it("strips forged copies in any case and sets the verified ID", () => {
    const headers: Record<string, unknown> = {
      "mesh-client-id": "forged",
      "Mesh-Client-Id": "forged2",
      x: "1",
    };
    setClientIdHeader(headers, "spiffe://example.org/ns/a/sa/b");
    expect(headers).toEqual({ x: "1", "mesh-client-id": "spiffe://example.org/ns/a/sa/b" });
    setClientIdHeader(headers, undefined);
    expect(headers).toEqual({ x: "1" });
  });

  it("sets the verified ID in place on the proxy's own list, removing every forged one", () => {
    const list = ["mesh-client-id", "f1", "Host", "a", "Mesh-Client-Id", "f2", "X", "1"];
    setClientIdRaw(list, "spiffe://td/x");
    expect(list).toEqual(["Host", "a", "X", "1", "mesh-client-id", "spiffe://td/x"]);
    const none = ["X", "1", "MESH-CLIENT-ID", "forged"];
    setClientIdRaw(none, undefined);
    expect(none).toEqual(["X", "1"]);
  });
});
