import { computeProxyStat, type ProxyStat } from "./compute.js";
import { type AdminScrape, type ScrapeOptions, scrapeAdmin } from "./scrape.js";
import type { AdminTarget } from "./target.js";

/** One result of `mesh-proxy stat`: a row set per admin server. */
export interface StatReport {
  /** Wall-clock time of the last scrape, ISO 8601. */
  readonly time: string;
  readonly proxies: readonly ProxyStat[];
}

/** Scrapes every target concurrently. */
export function scrapeAll(
  targets: readonly AdminTarget[],
  options?: ScrapeOptions,
): Promise<AdminScrape[]> {
  return Promise.all(targets.map((t) => scrapeAdmin(t, options)));
}

/** Builds a report from matching lists of earlier and later scrapes (same target order). */
export function statReport(
  before: readonly (AdminScrape | undefined)[],
  after: readonly AdminScrape[],
  now: Date = new Date(),
): StatReport {
  return {
    time: now.toISOString(),
    proxies: after.map((a, i) => computeProxyStat(before[i], a)),
  };
}

/**
 * Keeps recent scrapes of each target and picks, for a new scrape, the newest earlier one
 * at least `windowMs` old (else the oldest), so rates cover about one window even when
 * the window is longer than the scrape interval.
 */
export class ScrapeHistory {
  readonly #windowMs: number;
  readonly #history: AdminScrape[][];

  constructor(targets: number, windowMs: number) {
    this.#windowMs = windowMs;
    this.#history = Array.from({ length: targets }, () => []);
  }

  /** Records `after` and returns the scrapes to compare it with. */
  push(after: readonly AdminScrape[]): (AdminScrape | undefined)[] {
    return after.map((a, i) => {
      const h = this.#history[i] as AdminScrape[];
      const ok = h.filter((s) => s.error === undefined);
      // 5 % slack: timers fire a little late or early under load.
      const old = ok.filter((s) => a.timeMs - s.timeMs >= this.#windowMs * 0.95);
      const before = old.length > 0 ? old[old.length - 1] : ok[0];
      h.push(a);
      while (h.length > 1 && a.timeMs - (h[1] as AdminScrape).timeMs >= this.#windowMs * 0.95) {
        h.shift();
      }
      return before;
    });
  }
}
