import type { AddressInfo } from "node:net";

/** A clock the test moves by hand. */
export interface ManualClock {
  t: number;
  now(): number;
}

/** A manual clock starting at `t`. */
export function manualClock(t = 0): ManualClock {
  return {
    t,
    now() {
      return this.t;
    },
  };
}

/** Listens on 127.0.0.1:0 and resolves with the port. */
export function listen(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): AddressInfo | string | null;
}): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

/** Closes a server, resolving when done. */
export function close(server: { close(cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Extracts the value of one exposition line starting with `prefix` (series name + labels). */
export function sampleOf(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Resolves once `check()` is true, polling each event-loop turn (bounded by the test timeout). */
export function waitFor(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => (check() ? resolve() : setImmediate(poll));
    poll();
  });
}
