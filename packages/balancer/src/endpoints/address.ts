import { isIP } from "node:net";
import { typeError } from "@mesh/core";

/** A parsed endpoint address. */
export interface ParsedAddress {
  /** `http:` or `https:`. */
  readonly protocol: "http:" | "https:";
  /** Host name or IP (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Canonical origin, e.g. `http://10.0.0.1:8080` or `https://[::1]:8443`; the endpoint key. */
  readonly origin: string;
}

const HOST_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * Parses `host:port`, `[v6]:port`, or an `http://` / `https://` origin (default ports 80/443).
 * Paths, queries, credentials and out-of-range ports are rejected with `<path>: expected ...`.
 */
export function parseAddress(value: unknown, path = "address"): ParsedAddress {
  if (typeof value !== "string") throw typeError(path, 'a string like "10.0.0.1:8080"', value);
  const what = 'an address like "10.0.0.1:8080", "[::1]:8080" or "https://host:8443"';
  const bad = () => typeError(path, what, value);
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw bad();
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw bad();
  if (url.username || url.password || url.search || url.hash) throw bad();
  if (url.pathname !== "/" && url.pathname !== "") throw bad();
  if (!/^[a-z]+:\/\//i.test(value) && !/:\d+$/.test(value)) throw bad(); // bare host needs a port
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (!host) throw bad();
  if (isIP(host) === 0 && !host.split(".").every((label) => HOST_LABEL.test(label))) throw bad();
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  const protocol = url.protocol;
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  return { protocol, host, port, origin: `${protocol}//${hostPart}:${port}` };
}
