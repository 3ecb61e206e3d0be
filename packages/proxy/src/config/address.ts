/** A `host:port` listen or connect address, split into its parts. */
export interface HostPort {
  /** Host name or IP literal, without brackets for IPv6. */
  host: string;
  /** TCP port, 0..65535 (0 asks the OS for a free port when listening). */
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Returns `undefined` when
 * the text is not an address; the caller reports the error with its path.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65_535) return undefined;
  const host = m[1] ?? (m[2] === "" ? "0.0.0.0" : (m[2] as string));
  return { host, port };
}

/** Formats a host and port back into `host:port`, bracketing IPv6 literals. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
