import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import type { AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const run = promisify(execFile);

/** Listens on 127.0.0.1:0 and returns the port. */
export async function listen(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

export function tempDir(prefix = "tls-identity-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes files into a new temp dir; returns the dir and paths. */
export function writeFiles(files: Record<string, string>): {
  dir: string;
  path: (name: string) => string;
} {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, path: (name) => join(dir, name) };
}

/** A clock the test moves by hand (ms since epoch). */
export function fakeClock(start = Date.now()) {
  let t = start;
  return {
    now: () => t,
    set: (v: number) => {
      t = v;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}
