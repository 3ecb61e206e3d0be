import { promises as dns, type RecordWithTtl } from "node:dns";
import { duration, integerIn, typeError } from "@mesh/core";
import type { EndpointInit } from "../endpoints/endpoint.js";
import { ResolverError } from "../errors.js";
import { type Resolver, type ResolverUpdate, updateStream } from "./resolver.js";
import { querySrvTtl } from "./srv-ttl.js";

/** How long to wait for the SRV TTL query before falling back to the address TTLs. */
const SRV_TTL_TIMEOUT_MS = 2_000;

/** Options for {@link dnsResolver}. Durations in milliseconds. */
export interface DnsResolverOptions {
  /** Name to resolve. With `srv: true` this is the SRV name, e.g. `_http._tcp.api.internal`. */
  hostname: string;
  /** Port for A/AAAA answers. Required unless `srv` is true. */
  port?: number;
  /**
   * Resolve SRV records for targets and ports (lowest priority group; SRV weight becomes
   * endpoint weight). The set is re-resolved when the shortest TTL of the SRV records and of
   * their targets' addresses expires.
   */
  srv?: boolean;
  /** Address families to ask for. Default `"any"` (A and AAAA). */
  family?: 4 | 6 | "any";
  /** Re-resolve every this many ms instead of following record TTLs. */
  intervalMs?: number;
  /** Lower bound on the TTL-driven refresh. Default 1 000 ms. */
  minTtlMs?: number;
  /** Upper bound on the TTL-driven refresh (and refresh when TTLs are unknown). Default 30 000 ms. */
  maxTtlMs?: number;
  /** Retry delay after a failed resolution. Default 5 000 ms. */
  retryMs?: number;
  /** Metadata copied onto every endpoint (protocol hint, zone, identity, connect options). */
  template?: Omit<EndpointInit, "address">;
  /**
   * The resolver to use (e.g. one with `setServers`). Default: a new `dns.promises.Resolver`.
   * With `srv`, its first server (`getServers()`, else the system's) is also asked directly for
   * the SRV records' TTL, which `resolveSrv` does not report.
   */
  resolver?: Pick<dns.Resolver, "resolve4" | "resolve6" | "resolveSrv"> &
    Partial<Pick<dns.Resolver, "getServers">>;
}

interface Answer {
  endpoints: EndpointInit[];
  ttlMs: number | undefined;
}

/**
 * Discovers endpoints through DNS: A/AAAA (with a fixed port) or SRV (ports from the records),
 * re-resolved when the shortest TTL expires (clamped to `minTtlMs..maxTtlMs`) or on a fixed
 * interval. For SRV that is the shortest of the SRV records' own TTL and their targets'
 * address TTLs. A failed lookup or an empty answer yields an `error` update and is retried; the
 * last good set stays in use.
 */
export function dnsResolver(options: DnsResolverOptions): Resolver {
  if (options === null || typeof options !== "object")
    throw typeError("options", "an object", options);
  const { hostname, srv = false, family = "any", template = {} } = options;
  if (typeof hostname !== "string" || !/^[A-Za-z0-9_.-]+$/.test(hostname)) {
    throw typeError("hostname", "a DNS name", hostname);
  }
  if (typeof srv !== "boolean") throw typeError("srv", "a boolean", srv);
  if (!srv && options.port === undefined)
    throw typeError("port", "an integer in 1..65535 (or srv: true)", undefined);
  const port = srv ? 0 : integerIn("port", options.port, 0, 1, 65535);
  if (family !== 4 && family !== 6 && family !== "any")
    throw typeError("family", '4, 6 or "any"', family);
  const intervalMs =
    options.intervalMs === undefined ? undefined : duration("intervalMs", options.intervalMs, 0, 1);
  const minTtlMs = duration("minTtlMs", options.minTtlMs, 1_000, 0);
  const maxTtlMs = duration("maxTtlMs", options.maxTtlMs, Math.max(30_000, minTtlMs), minTtlMs);
  const retryMs = duration("retryMs", options.retryMs, 5_000, 1);
  const resolver = options.resolver ?? new dns.Resolver();
  const source = srv ? `dns+srv:${hostname}` : `dns:${hostname}:${port}`;

  const addresses = async (name: string, p: number, weight?: number): Promise<Answer> => {
    const lookups: Promise<RecordWithTtl[]>[] = [];
    const soft = (err: { code?: string }) => {
      if (err?.code === "ENODATA" || err?.code === "ENOTFOUND") return [] as RecordWithTtl[];
      throw err;
    };
    if (family !== 6) lookups.push(resolver.resolve4(name, { ttl: true }).catch(soft));
    if (family !== 4) lookups.push(resolver.resolve6(name, { ttl: true }).catch(soft));
    const records = (await Promise.all(lookups)).flat();
    let ttl: number | undefined;
    const endpoints = records.map((r) => {
      if (ttl === undefined || r.ttl < ttl) ttl = r.ttl;
      const host = r.address.includes(":") ? `[${r.address}]` : r.address;
      const e: EndpointInit = { ...template, address: `${host}:${p}` };
      if (weight !== undefined) e.weight = weight;
      return e;
    });
    return { endpoints, ttlMs: ttl === undefined ? undefined : ttl * 1000 };
  };

  const resolveOnce = async (): Promise<Answer> => {
    if (!srv) return addresses(hostname, port);
    const server = (resolver.getServers?.() ?? dns.getServers())[0];
    // A fixed `intervalMs` ignores TTLs: then the SRV record's own TTL is not asked for.
    const srvTtl =
      server === undefined || intervalMs !== undefined
        ? undefined
        : querySrvTtl(hostname, server, SRV_TTL_TIMEOUT_MS);
    const records = await resolver.resolveSrv(hostname);
    if (records.length === 0) return { endpoints: [], ttlMs: undefined };
    const best = Math.min(...records.map((r) => r.priority));
    const answers = await Promise.all(
      records
        .filter((r) => r.priority === best)
        .map((r) => addresses(r.name, r.port, r.weight > 0 ? r.weight : 1)),
    );
    const ttls = answers.map((a) => a.ttlMs).filter((t): t is number => t !== undefined);
    const ownTtl = await srvTtl;
    if (ownTtl !== undefined) ttls.push(ownTtl * 1000);
    return {
      endpoints: answers.flatMap((a) => a.endpoints),
      ttlMs: ttls.length ? Math.min(...ttls) : undefined,
    };
  };

  return {
    source,
    [Symbol.asyncIterator]() {
      return updateStream((push: (u: ResolverUpdate) => void) => {
        let timer: NodeJS.Timeout | undefined;
        let stopped = false;
        const schedule = (ms: number) => {
          if (stopped) return;
          timer = setTimeout(run, ms);
          timer.unref();
        };
        const run = async () => {
          try {
            const answer = await resolveOnce();
            if (stopped) return;
            if (answer.endpoints.length === 0) throw new Error("no addresses in the answer");
            push({ type: "endpoints", endpoints: answer.endpoints });
            const ttlMs = answer.ttlMs ?? maxTtlMs;
            schedule(intervalMs ?? Math.min(maxTtlMs, Math.max(minTtlMs, ttlMs)));
          } catch (err) {
            if (stopped) return;
            const reason = err instanceof Error ? err.message : String(err);
            push({ type: "error", error: new ResolverError(source, reason, { cause: err }) });
            schedule(retryMs);
          }
        };
        void run();
        return () => {
          stopped = true;
          if (timer) clearTimeout(timer);
        };
      });
    },
  };
}
