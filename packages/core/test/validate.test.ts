import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bool,
  clockOption,
  duration,
  integerIn,
  monotonicClock,
  nonEmptyString,
  numberIn,
  optionsObject,
  show,
} from "../src/index.js";

const FORMAT = /^[\w.[\]]+: expected .+, got .+$/;

describe("option validation", () => {
  it("returns the fallback for undefined and the value when in range", () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), (v) => {
        expect(numberIn("a.b", undefined, 7, -1e6, 1e6)).toBe(7);
        expect(numberIn("a.b", v, 7, -1e6, 1e6)).toBe(v);
      }),
    );
  });

  it("throws TypeError for wrong types and RangeError for out-of-range, in one format", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.boolean(),
          fc.constant(null),
          fc.object(),
          fc.constant(Number.NaN),
        ),
        (v) => {
          for (const read of [
            () => numberIn("a.b", v, 0, 0, 1),
            () => integerIn("a.b", v, 0, 0, 1),
            () => duration("a.b", v, 0),
          ]) {
            let err: unknown;
            try {
              read();
            } catch (e) {
              err = e;
            }
            expect(err).toBeInstanceOf(TypeError);
            expect((err as Error).message).toMatch(FORMAT);
            expect((err as Error).message.startsWith("a.b: expected ")).toBe(true);
          }
        },
      ),
    );
    fc.assert(
      fc.property(
        fc.double({ noNaN: true }).filter((v) => v < 0 || v > 1),
        (v) => {
          expect(() => numberIn("a", v, 0, 0, 1)).toThrow(RangeError);
          expect(() => numberIn("a", v, 0, 0, 1)).toThrow(`a: expected a number in 0..1, got ${v}`);
        },
      ),
    );
  });

  it("spells the constraint", () => {
    expect(() => numberIn("x", 0, 1, 0, 10, true)).toThrow(
      new RangeError("x: expected a number in 0 (exclusive)..10, got 0"),
    );
    expect(() => numberIn("x", -1, 1, 0)).toThrow(
      new RangeError("x: expected a number >= 0, got -1"),
    );
    expect(() => numberIn("x", Number.POSITIVE_INFINITY, 1, 0)).toThrow(RangeError);
    expect(() => integerIn("x", 1.5, 1, 0, 10)).toThrow(
      new RangeError("x: expected an integer in 0..10, got 1.5"),
    );
    expect(() => duration("x", -1, 1)).toThrow(
      new RangeError("x: expected a duration in ms in 0..2147483647, got -1"),
    );
    expect(() => bool("x", "yes", false)).toThrow(
      new TypeError('x: expected a boolean, got "yes"'),
    );
    expect(() => nonEmptyString("x", "")).toThrow(
      new TypeError('x: expected a non-empty string, got ""'),
    );
    expect(nonEmptyString("x", undefined, "d")).toBe("d");
    expect(() => nonEmptyString("x", undefined)).toThrow(TypeError);
    expect(clockOption("x", undefined, monotonicClock)).toBe(monotonicClock);
    expect(() => clockOption("x", {}, monotonicClock)).toThrow(
      new TypeError("x: expected a clock { now(): number }, got {}"),
    );
  });

  it("rejects unknown options with the closest name", () => {
    const names = {
      known: ["limit", "perTryTimeout"],
      hints: { retries: "limit", pool: 'use "x"' },
    };
    expect(optionsObject("o", undefined, names)).toEqual({});
    expect(() => optionsObject("o", [] as never)).toThrow(
      new TypeError("o: expected an options object, got an array"),
    );
    expect(() => optionsObject("o", { retries: 1 } as never, names)).toThrow(
      'o: unknown option "retries" (did you mean "limit"?)',
    );
    expect(() => optionsObject("o", { perTryTimout: 1 } as never, names)).toThrow(
      'o: unknown option "perTryTimout" (did you mean "perTryTimeout"?)',
    );
    expect(() => optionsObject("o", { pool: 1 } as never, names)).toThrow(
      'o: unknown option "pool" (did you mean use "x"?)',
    );
    expect(() => optionsObject("o", { zzzzzz: 1 } as never, names)).toThrow(
      'o: unknown option "zzzzzz" (known options: limit, perTryTimeout)',
    );
  });

  it("renders any value without throwing", () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        expect(typeof show(v)).toBe("string");
        expect(show(v).length).toBeLessThanOrEqual(80);
      }),
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(show(cyclic)).toBe("an object");
    expect(show(10n)).toBe("10n");
  });
});
