import { isIPv4, isIPv6 } from "node:net";

/**
 * An IP address in numeric form: IPv4 as an unsigned 32-bit number, IPv6 as a 128-bit
 * bigint. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener
 * reports for IPv4 peers) are returned as IPv4 so IPv4 networks match them.
 *
 * @public
 */
export type IpAddress =
  | { readonly family: 4; readonly value: number }
  | {
      readonly family: 6;
      readonly value: bigint;
    };

/** A network: an address with a prefix length, host bits cleared. @public */
export interface IpNetwork {
  readonly family: 4 | 6;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  readonly bits: number;
  /** Canonical text, e.g. `10.0.0.0/8`, `fd00::/8` (for messages and events). */
  readonly text: string;
  /** Whether `address` is inside this network. */
  contains(address: IpAddress): boolean;
}

function parseV4(text: string): number {
  const parts = text.split(".");
  let value = 0;
  for (const p of parts) value = value * 256 + Number(p);
  return value >>> 0;
}

const MAPPED_PREFIX = 0xffffn << 32n;

function parseV6(text: string): bigint {
  let head = text;
  const extra: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    const v4 = parseV4(text.slice(lastColon + 1));
    extra.push(v4 >>> 16, v4 & 0xffff);
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const halves = head.split("::");
  const left = halves[0] ? (halves[0] as string).split(":") : [];
  const right = halves.length > 1 && halves[1] ? (halves[1] as string).split(":") : [];
  const fill = 8 - extra.length - left.length - right.length;
  const groups = [
    ...left.map((g) => Number.parseInt(g, 16)),
    ...new Array<number>(halves.length > 1 ? fill : 0).fill(0),
    ...right.map((g) => Number.parseInt(g, 16)),
    ...extra,
  ];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/**
 * Parses an IPv4 or IPv6 address (an IPv6 zone such as `%eth0` is ignored). Returns
 * `undefined` when `text` is not an IP address.
 *
 * @public
 */
export function parseIpAddress(text: string): IpAddress | undefined {
  if (isIPv4(text)) return { family: 4, value: parseV4(text) };
  const pct = text.indexOf("%");
  const bare = pct === -1 ? text : text.slice(0, pct);
  if (!isIPv6(bare)) return undefined;
  const value = parseV6(bare);
  if (value >> 32n === 0xffffn) return { family: 4, value: Number(value & 0xffffffffn) };
  return { family: 6, value };
}

function formatV4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

function formatV6(value: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

class V4Network implements IpNetwork {
  readonly family = 4 as const;
  readonly text: string;
  readonly #base: number;
  readonly #mask: number;
  constructor(
    base: number,
    readonly bits: number,
  ) {
    this.#mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    this.#base = (base & this.#mask) >>> 0;
    this.text = `${formatV4(this.#base)}/${bits}`;
  }
  contains(address: IpAddress): boolean {
    return address.family === 4 && ((address.value ^ this.#base) & this.#mask) === 0;
  }
}

const ALL_128 = (1n << 128n) - 1n;

class V6Network implements IpNetwork {
  readonly family = 6 as const;
  readonly text: string;
  readonly #base: bigint;
  readonly #mask: bigint;
  constructor(
    base: bigint,
    readonly bits: number,
  ) {
    this.#mask = bits === 0 ? 0n : (ALL_128 << BigInt(128 - bits)) & ALL_128;
    this.#base = base & this.#mask;
    this.text = `${formatV6(this.#base)}/${bits}`;
  }
  contains(address: IpAddress): boolean {
    return address.family === 6 && ((address.value ^ this.#base) & this.#mask) === 0n;
  }
}

/**
 * Parses a network in CIDR notation (`10.0.0.0/8`, `fd00::/8`) or a single address
 * (`10.1.2.3` = `/32`, `::1` = `/128`). Host bits below the prefix are ignored
 * (`10.1.2.3/8` is `10.0.0.0/8`). An IPv6 network inside `::ffff:0:0/96` is turned into
 * the IPv4 network it maps, since IPv4-mapped peer addresses are matched as IPv4.
 *
 * @param path - the option path used in the error message.
 * @throws TypeError `<path>: expected a CIDR network ..., got ...`; RangeError for a bad
 *   prefix length.
 * @public
 */
export function parseNetwork(text: unknown, path = "network"): IpNetwork {
  if (typeof text !== "string")
    throw new TypeError(`${path}: expected a CIDR string such as "10.0.0.0/8", got ${kind(text)}`);
  const slash = text.indexOf("/");
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const address = isIPv4(addrText) || isIPv6(addrText) ? parseIpAddress(addrText) : undefined;
  if (!address)
    throw new TypeError(
      `${path}: expected a CIDR network such as "10.0.0.0/8" or "fd00::/8", got ${JSON.stringify(text)}`,
    );
  const v6Text = isIPv6(addrText);
  const max = v6Text ? 128 : 32;
  let bits = max;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max)
      throw new RangeError(
        `${path}: expected a prefix length in 0..${max} after "/", got ${JSON.stringify(text)}`,
      );
    bits = Number(p);
  }
  if (v6Text && address.family === 4) {
    // IPv4-mapped network: /96 and longer map onto IPv4; shorter ones span more than IPv4.
    if (bits >= 96) return new V4Network(address.value, bits - 96);
    return new V6Network(MAPPED_PREFIX | BigInt(address.value), bits);
  }
  return address.family === 4
    ? new V4Network(address.value, bits)
    : new V6Network(address.value, bits);
}

/** Whether network `inner` lies entirely inside `outer`. @public */
export function networkContains(outer: IpNetwork, inner: IpNetwork): boolean {
  if (outer.family !== inner.family || inner.bits < outer.bits) return false;
  const base = parseIpAddress(inner.text.slice(0, inner.text.indexOf("/")));
  return base !== undefined && outer.contains(base);
}

function kind(value: unknown): string {
  if (value === null || typeof value !== "object") return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}
