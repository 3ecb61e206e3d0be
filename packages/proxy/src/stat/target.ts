import { parseHostPort } from "../config/address.js";

/** An admin server to scrape, with the name its rows are shown under. */
export interface AdminTarget {
  /** Display name: the `name=` prefix given, else the address. */
  readonly name: string;
  /** `host:port` of the admin server. */
  readonly address: string;
}

/**
 * Parses `--admin` values: comma-separated `[name=]host:port` entries (an `http://` prefix
 * and a trailing `/` are accepted). Throws a `TypeError` naming the bad entry.
 */
export function parseAdminTargets(values: readonly string[]): AdminTarget[] {
  const out: AdminTarget[] = [];
  for (const value of values) {
    for (const raw of value.split(",")) {
      const entry = raw.trim();
      if (entry === "") continue;
      const eq = entry.indexOf("=");
      const name = eq > 0 ? entry.slice(0, eq) : undefined;
      const address = (eq > 0 ? entry.slice(eq + 1) : entry)
        .replace(/^http:\/\//, "")
        .replace(/\/$/, "");
      if (parseHostPort(address) === undefined) {
        throw new TypeError(
          `--admin[${out.length}]: expected [name=]host:port, got ${JSON.stringify(entry)}`,
        );
      }
      out.push({ name: name ?? address, address });
    }
  }
  if (out.length === 0) {
    throw new TypeError("--admin: expected at least one [name=]host:port, got nothing");
  }
  return out;
}
