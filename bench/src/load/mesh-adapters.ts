/**
 * The one place that knows the @mesh libraries' APIs. Every scenario asks here whether a
 * library is usable (its dist exists and exports what the bench needs) and gets a reason
 * string when not, so results say `unavailable: <why>` instead of failing.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Agent, Dispatcher } from "undici";

/** Repository root (bench/ is one level down). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The @mesh packages the bench uses, by folder name. */
export type MeshPackage = "retry" | "balancer" | "tls-identity" | "metrics" | "proxy" | "limit";

/** Exports each scenario needs from a package. */
const REQUIRED: Record<MeshPackage, string[]> = {
  retry: ["retry", "RetryBudget", "hedge"],
  balancer: ["Balancer", "EndpointSet"],
  "tls-identity": ["createTrustAnchor"],
  metrics: ["metrics", "instrumentServer", "GoldenSignals"],
  proxy: [],
  limit: ["GradientLimiter", "limitRequests"],
};

/** Thrown when a @mesh package cannot be used yet; `reason` goes into the results. */
export class MeshUnavailableError extends Error {
  readonly code = "MESH_BENCH_UNAVAILABLE";
  /** Why the package cannot be used, as written into the results. */
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
    this.name = "MeshUnavailableError";
  }
}

/** Imports `@mesh/<pkg>` and checks the exports the bench needs; throws with a reason. */
export async function importMesh(pkg: MeshPackage): Promise<Record<string, unknown>> {
  const dist = join(REPO_ROOT, "packages", pkg, "dist", "index.js");
  if (!existsSync(dist)) throw new MeshUnavailableError(`packages/${pkg}/dist/index.js not built`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`@mesh/${pkg}`)) as Record<string, unknown>;
  } catch (error) {
    throw new MeshUnavailableError(`@mesh/${pkg} failed to load: ${(error as Error).message}`);
  }
  const missing = REQUIRED[pkg].filter((name) => !(name in mod));
  if (missing.length > 0) {
    throw new MeshUnavailableError(`@mesh/${pkg} does not export ${missing.join(", ")} yet`);
  }
  return mod;
}

/** `null` when usable, else the reason it is not. */
export async function meshUnavailableReason(pkg: MeshPackage): Promise<string | null> {
  try {
    await importMesh(pkg);
    return null;
  } catch (error) {
    return error instanceof MeshUnavailableError ? error.reason : String(error);
  }
}

/** Adapters over the @mesh APIs, used by the load generator's clients. */
export interface MeshAdapters {
  retryDispatcher(
    agent: Agent,
    opts: { limit: number },
  ): { dispatcher: Dispatcher; describe: string };
  balancer(
    origins: string[],
    opts: { connections: number; strategy: "p2c" | "round-robin" | "least-pending" },
  ): { dispatcher: Dispatcher; describe: string; close(): Promise<void> };
  /** P2C balancer, with `hedge()` over it when `delayMs` is set (default budget). */
  hedged(
    origins: string[],
    opts: { connections: number; delayMs: number | undefined },
  ): { dispatcher: Dispatcher; describe: string; close(): Promise<void> };
}

/** Loads the adapters (lazily imports each package on first use). */
export async function loadMesh(): Promise<MeshAdapters> {
  const retryMod = await importMesh("retry").catch((e: unknown) => e as Error);
  const balancerMod = await importMesh("balancer").catch((e: unknown) => e as Error);
  const adapters: MeshAdapters = {
    retryDispatcher(agent, { limit }) {
      if (retryMod instanceof Error) throw retryMod;
      type RetryFactory = (
        opts: Record<string, unknown>,
      ) => Dispatcher.DispatcherComposeInterceptor;
      const BudgetClass = retryMod.RetryBudget as new () => unknown;
      const retry = retryMod.retry as RetryFactory;
      // Option names are @mesh/retry's (`http` for the statuses, not Envoy's `retryOn`);
      // retry() rejects names it does not know.
      const interceptor = retry({ budget: new BudgetClass(), limit, http: "5xx" });
      return {
        dispatcher: agent.compose(interceptor),
        describe: `@mesh/retry retry() (default RetryBudget, limit ${limit}, http 5xx)`,
      };
    },
    balancer(origins, { connections, strategy }) {
      if (balancerMod instanceof Error) throw balancerMod;
      const BalancerClass = balancerMod.Balancer as new (
        opts: Record<string, unknown>,
      ) => Dispatcher;
      const dispatcher = new BalancerClass({
        endpoints: origins,
        strategy,
        pool: { connections },
      });
      return {
        dispatcher,
        describe: `@mesh/balancer Balancer (${strategy === "p2c" ? "P2C over Peak-EWMA" : strategy})`,
        close: () => dispatcher.close(),
      };
    },
    hedged(origins, { connections, delayMs }) {
      if (balancerMod instanceof Error) throw balancerMod;
      if (retryMod instanceof Error) throw retryMod;
      const { dispatcher: balancer, close } = adapters.balancer(origins, {
        connections,
        strategy: "p2c",
      });
      if (delayMs === undefined)
        return { dispatcher: balancer, describe: "@mesh/balancer P2C, no hedging", close };
      const hedge = retryMod.hedge as (
        opts: Record<string, unknown>,
      ) => Dispatcher.DispatcherComposeInterceptor;
      const BudgetClass = retryMod.RetryBudget as new () => unknown;
      return {
        dispatcher: balancer.compose(hedge({ delay: delayMs, budget: new BudgetClass() })),
        describe: `@mesh/balancer P2C + @mesh/retry hedge() (delay ${delayMs} ms, maxAttempts 2, default RetryBudget)`,
        close,
      };
    },
  };
  return adapters;
}
