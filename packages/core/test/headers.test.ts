import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addHeader,
  forEachHeader,
  getHeader,
  getHeaderValues,
  hasHeader,
  removeHeader,
  removeHeaderInPlace,
  takeHeader,
  type UndiciHeaders,
} from "../src/index.js";

type Line = [string, string];

/** The same field lines in every shape undici accepts. */
function shapes(lines: readonly Line[]): Record<string, UndiciHeaders> {
  const record: Record<string, string | string[]> = {};
  for (const [k, v] of lines) {
    const prev = record[k];
    record[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return {
    flat: lines.flat(),
    buffers: lines.flatMap(([k, v]) => [Buffer.from(k, "latin1"), v]),
    pairs: lines.map(([k, v]) => [k, v]),
    map: new Map(Object.entries(record)),
    record,
  };
}

function lines(headers: UndiciHeaders): Line[] {
  const out: Line[] = [];
  forEachHeader(headers, (k, v, into) => into.push([k.toLowerCase(), v]), out);
  return out;
}

const name = fc.constantFrom("host", "Host", "x-a", "X-A", "set-cookie", "mesh-retryable");
const value = fc.string({ maxLength: 8 });
const lineList = fc.array(fc.tuple(name, value), { maxLength: 8 });
const sorted = (l: Line[]) => [...l].sort((a, b) => (a.join("\0") < b.join("\0") ? -1 : 1));

describe("header shapes", () => {
  it("forEachHeader visits every field line of every shape, repeated names kept", () => {
    fc.assert(
      fc.property(lineList, (ls) => {
        const want = sorted(ls.map(([k, v]) => [k.toLowerCase(), v] as Line));
        for (const h of Object.values(shapes(ls))) {
          // Objects and Maps group a name's lines, so compare as multisets.
          expect(sorted(lines(h))).toEqual(want);
        }
      }),
    );
  });

  it("getHeader finds the first value in any case; getHeaderValues all of them", () => {
    fc.assert(
      fc.property(lineList, name, (ls, n) => {
        const lower = n.toLowerCase();
        const values = ls.filter(([k]) => k.toLowerCase() === lower).map(([, v]) => v);
        const { flat, buffers, pairs } = shapes(ls);
        for (const h of [flat, buffers, pairs]) {
          expect(getHeader(h, lower)).toBe(values[0]);
          expect(getHeaderValues(h, lower)).toEqual(values);
          expect(hasHeader(h, lower)).toBe(values.length > 0);
        }
      }),
    );
  });

  it("removeHeader drops every occurrence, keeps the rest and the shape, never mutates", () => {
    fc.assert(
      fc.property(lineList, name, (ls, n) => {
        const lower = n.toLowerCase();
        const rest = ls
          .filter(([k]) => k.toLowerCase() !== lower)
          .map(([k, v]) => [k.toLowerCase(), v] as Line);
        for (const [shape, h] of Object.entries(shapes(ls))) {
          const before = lines(h);
          const out = removeHeader(h, lower);
          expect(sorted(lines(out))).toEqual(sorted(rest));
          expect(lines(h)).toEqual(before);
          if (rest.length === ls.length) expect(out).toBe(h);
          else if (shape === "record") expect(Array.isArray(out)).toBe(false);
          else expect(Array.isArray(out)).toBe(true);
        }
      }),
    );
  });

  it("takeHeader returns the first value and the headers without the name, or undefined", () => {
    fc.assert(
      fc.property(lineList, (ls) => {
        for (const h of Object.values(shapes(ls))) {
          const taken = takeHeader(h, "mesh-retryable");
          const want = getHeader(h, "mesh-retryable");
          if (want === undefined) expect(taken).toBeUndefined();
          else {
            expect(taken?.value).toBe(want);
            expect(hasHeader(taken?.headers, "mesh-retryable")).toBe(false);
          }
        }
      }),
    );
  });

  it("addHeader appends one field line, keeping repeated ones, without mutating", () => {
    fc.assert(
      fc.property(lineList, name, value, (ls, n, v) => {
        for (const h of Object.values(shapes(ls))) {
          const before = lines(h);
          const out = addHeader(h, n, v);
          expect(sorted(lines(out))).toEqual(sorted([...before, [n.toLowerCase(), v]]));
          expect(lines(h)).toEqual(before);
        }
      }),
    );
  });

  it("removeHeaderInPlace edits a flat list the caller owns", () => {
    fc.assert(
      fc.property(lineList, name, (ls, n) => {
        const lower = n.toLowerCase();
        const list: unknown[] = ls.flat();
        removeHeaderInPlace(list, lower);
        expect(list).toEqual(ls.filter(([k]) => k.toLowerCase() !== lower).flat());
      }),
    );
  });

  it("gives undici a shape it accepts: arrays out are flat", () => {
    const map = new Map([
      ["a", "1"],
      ["host", "h"],
    ]);
    expect(removeHeader(map, "host")).toEqual(["a", "1"]);
    expect(addHeader([["a", "1"]], "b", "2")).toEqual(["a", "1", "b", "2"]);
    expect(addHeader(new Map([["a", ["1", "2"]]]), "b", "3")).toEqual([
      "a",
      "1",
      "a",
      "2",
      "b",
      "3",
    ]);
  });

  it("treats null and undefined as no headers, and skips undefined values", () => {
    expect(getHeader(undefined, "host")).toBeUndefined();
    expect(removeHeader(null, "host")).toBeNull();
    expect(addHeader(undefined, "host", "a")).toEqual(["host", "a"]);
    expect(lines({ a: undefined, b: ["1", "2"] })).toEqual([
      ["b", "1"],
      ["b", "2"],
    ]);
    expect(getHeader({ Host: "x" }, "host")).toBe("x");
    expect(addHeader({ Host: "x" }, "host", "y")).toEqual({ Host: ["x", "y"] });
  });
});
