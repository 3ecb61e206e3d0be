import { show } from "./show.js";

/** `<path>: expected <what>, got <value>` as a TypeError: the value has the wrong type. */
export function typeError(path: string, what: string, value: unknown): TypeError {
  return new TypeError(`${path}: expected ${what}, got ${show(value)}`);
}

/** `<path>: expected <what>, got <value>` as a RangeError: right type, value out of range. */
export function rangeError(path: string, what: string, value: unknown): RangeError {
  return new RangeError(`${path}: expected ${what}, got ${show(value)}`);
}
