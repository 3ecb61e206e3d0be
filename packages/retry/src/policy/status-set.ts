import { rangeError, typeError } from "@mesh/core";

/**
 * A set of HTTP status codes parsed from Linkerd's syntax: `5xx`, `gateway-error` (502–504),
 * a range `500-504`, or a single code `503`; several separated by commas or given as an array.
 */
export class HttpStatusSet {
  readonly #codes = new Uint8Array(600);
  /** The source text, for messages. */
  readonly source: string;

  constructor(spec: string | readonly string[], path = "http") {
    const items = typeof spec === "string" ? spec.split(",") : spec;
    if (typeof spec !== "string" && !Array.isArray(spec)) {
      throw typeError(path, 'status classes like "5xx", "gateway-error", "500-504", "503"', spec);
    }
    for (const raw of items) {
      if (typeof raw !== "string") {
        throw typeError(path, 'status classes like "5xx", "gateway-error", "500-504", "503"', raw);
      }
      const item = raw.trim().toLowerCase();
      if (item === "") continue;
      const [lo, hi] = parseItem(item, path, raw);
      for (let c = lo; c <= hi; c++) this.#codes[c] = 1;
    }
    this.source = items.map((s) => String(s).trim()).join(",");
  }

  /** Whether `status` is in the set. */
  has(status: number): boolean {
    return this.#codes[status] === 1;
  }
}

function parseItem(item: string, path: string, raw: string): [number, number] {
  if (item === "gateway-error") return [502, 504];
  const cls = /^([1-5])xx$/.exec(item);
  if (cls) {
    const base = Number(cls[1]) * 100;
    return [base, base + 99];
  }
  const range = /^(\d{3})-(\d{3})$/.exec(item);
  if (range) {
    const lo = Number(range[1]);
    const hi = Number(range[2]);
    if (!validCode(lo) || !validCode(hi) || lo > hi) {
      throw rangeError(path, "a status range lo-hi within 100..599 with lo <= hi", raw);
    }
    return [lo, hi];
  }
  if (/^\d{3}$/.test(item)) {
    const code = Number(item);
    if (!validCode(code)) throw rangeError(path, "a status code in 100..599", raw);
    return [code, code];
  }
  throw typeError(path, 'a status class like "5xx", "gateway-error", "500-504" or "503"', raw);
}

function validCode(code: number): boolean {
  return code >= 100 && code <= 599;
}
