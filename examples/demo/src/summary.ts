import type { TrafficCounts } from "./traffic.ts";

/** The parts of `mesh-proxy stat --json` the demo summary reads. */
export interface StatJson {
  proxies: {
    proxy: string;
    admin: string;
    error: { message: string } | null;
    traffic: {
      direction: string;
      authority: string;
      successRate: number | null;
      rps: number | null;
      mtls: string;
      total: { requests: number; successes: number; failures: number };
    }[];
    endpoints: {
      service: string;
      address: string;
      identity: string | null;
      share: number | null;
      total: { requests: number; failures: number };
    }[];
  }[];
}

/** The JSON line the demo prints last in headless mode (and its test reads). */
export interface DemoSummary {
  summary: "mesh-demo";
  mtls: boolean;
  durationSeconds: number;
  /** What the traffic generator saw at web's inbound listener. */
  generator: TrafficCounts;
  /** Per sidecar: requests it handled since start, per direction, and whether they were mTLS. */
  sidecars: Record<
    string,
    {
      admin: string;
      inbound: { requests: number; successRate: number | null; mtls: string } | null;
      outbound: { requests: number; successRate: number | null; mtls: string } | null;
    }
  >;
  /** Per books replica role: its share of web's requests to books since start. */
  books: Record<
    string,
    { address: string; identity: string | null; requests: number; failures: number; share: number }
  >;
  /** web → books as web's app sees it (after retries), since start. */
  webToBooksSuccessRate: number | null;
  /** What the flaky replica itself answered (before retries), since start. */
  flakyRawSuccessRate: number | null;
  /** Every child process and port, for checking that nothing is left behind. */
  pids: number[];
  ports: number[];
}

function rate(t: { successes: number; failures: number }): number | null {
  const n = t.successes + t.failures;
  return n === 0 ? null : t.successes / n;
}

function direction(rows: StatJson["proxies"][number]["traffic"], dir: string) {
  const mine = rows.filter((r) => r.direction === dir);
  if (mine.length === 0) return null;
  const total = { requests: 0, successes: 0, failures: 0 };
  for (const r of mine) {
    total.requests += r.total.requests;
    total.successes += r.total.successes;
    total.failures += r.total.failures;
  }
  const mtls = mine.every((r) => r.mtls === "yes")
    ? "yes"
    : mine.some((r) => r.mtls !== "no")
      ? "partial"
      : "no";
  return { requests: total.requests, successRate: rate(total), mtls };
}

/** Builds the demo's summary from a `mesh-proxy stat --json` report of every sidecar. */
export function summarize(
  stat: StatJson,
  input: {
    mtls: boolean;
    durationSeconds: number;
    generator: TrafficCounts;
    booksRoles: ReadonlyMap<string, string>;
    pids: number[];
    ports: number[];
  },
): DemoSummary {
  const sidecars: DemoSummary["sidecars"] = {};
  const books: DemoSummary["books"] = {};
  let webToBooks: number | null = null;
  let flaky: number | null = null;
  for (const p of stat.proxies) {
    sidecars[p.proxy] = {
      admin: p.admin,
      inbound: direction(p.traffic, "inbound"),
      outbound: direction(p.traffic, "outbound"),
    };
    if (p.proxy === "web") {
      const out = p.traffic.filter(
        (r) => r.direction === "outbound" && r.authority.startsWith("books"),
      );
      const t = out.reduce(
        (a, r) => ({
          successes: a.successes + r.total.successes,
          failures: a.failures + r.total.failures,
        }),
        { successes: 0, failures: 0 },
      );
      webToBooks = rate(t);
      const eps = p.endpoints.filter((e) => e.service === "books");
      const sum = eps.reduce((a, e) => a + e.total.requests, 0);
      for (const e of eps) {
        books[input.booksRoles.get(e.address) ?? e.address] = {
          address: e.address,
          identity: e.identity,
          requests: e.total.requests,
          failures: e.total.failures,
          share: sum === 0 ? 0 : e.total.requests / sum,
        };
      }
    }
    if (p.proxy === "books-flaky") {
      const t = p.traffic
        .filter((r) => r.direction === "inbound")
        .reduce(
          (a, r) => ({
            successes: a.successes + r.total.successes,
            failures: a.failures + r.total.failures,
          }),
          { successes: 0, failures: 0 },
        );
      flaky = rate(t);
    }
  }
  return {
    summary: "mesh-demo",
    mtls: input.mtls,
    durationSeconds: input.durationSeconds,
    generator: input.generator,
    sidecars,
    books,
    webToBooksSuccessRate: webToBooks,
    flakyRawSuccessRate: flaky,
    pids: input.pids,
    ports: input.ports,
  };
}
