// Node's global fetch, load-balanced over three replicas with retries and timeouts:
// @mesh/balancer (P2C over Peak-EWMA) under @mesh/retry's retry budget and deadlines.
// Run: npm start -w @mesh/example-fetch-retry   (env REQUESTS, CONCURRENCY)
import { subscribe } from "node:diagnostics_channel";
import { Balancer } from "@mesh/balancer";
import { RetryBudget, retry, timeout } from "@mesh/retry";
import { type Replica, startReplica } from "./backends.ts";

const requests = positiveInt("REQUESTS", 300);
const concurrency = positiveInt("CONCURRENCY", 16);

// Three replicas of one service: a healthy one, a slow one, one failing every 5th request.
const replicas: Replica[] = await Promise.all([
  startReplica({ name: "healthy", delayMs: 0, failEvery: 0 }),
  startReplica({ name: "slow", delayMs: 50, failEvery: 0 }),
  startReplica({ name: "flaky", delayMs: 0, failEvery: 5 }),
]);

// ---- the part to copy into your app ------------------------------------------------------
// One budget per upstream: retries may add at most 20 % to real traffic (+10/s reserve).
const budget = new RetryBudget({ name: "catalog" });
const balancer = new Balancer({
  name: "catalog",
  endpoints: replicas.map((r) => r.address),
});
// compose(a, b): b is outermost. The deadline spans every attempt; each try gets 500 ms.
const dispatcher = balancer.compose(
  retry({ budget, limit: 2, perTryTimeout: 500 }),
  timeout({ request: 5_000 }),
);
// ------------------------------------------------------------------------------------------

// What the retry layer did, observed the way @mesh/metrics does it: by channel name.
const retriesByReason = new Map<string, number>();
let budgetExhausted = 0;
subscribe("mesh:retry:retry", (message) => {
  const { reason } = message as { reason: string };
  retriesByReason.set(reason, (retriesByReason.get(reason) ?? 0) + 1);
});
subscribe("mesh:retry:budget-exhausted", () => {
  budgetExhausted++;
});

let ok = 0;
const failures = new Map<string, number>();
let next = 0;
async function worker(): Promise<void> {
  while (next < requests) {
    const i = next++;
    try {
      // `Host: catalog` goes upstream; the balancer picks the replica to connect to. (The cast
      // only bridges undici 8's types and the undici-types that describe global fetch.)
      const res = await fetch(`http://catalog/items/${i}`, { dispatcher } as RequestInit);
      await res.arrayBuffer();
      if (res.ok) ok++;
      else count(failures, `HTTP ${res.status}`);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      count(failures, cause?.code ?? cause?.message ?? String(err));
    }
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const elapsedMs = performance.now() - started;

const received = replicas.reduce((sum, r) => sum + r.received, 0);
const result = {
  msg: "result",
  requests,
  succeeded: ok,
  successRate: ok / requests,
  elapsedMs: Math.round(elapsedMs),
  failures: Object.fromEntries(failures),
  replicas: replicas.map((r) => ({
    name: r.name,
    address: r.address,
    received: r.received,
    share: r.received / received,
    failedOnPurpose: r.failed,
  })),
  retries: [...retriesByReason.values()].reduce((a, b) => a + b, 0),
  retriesByReason: Object.fromEntries(retriesByReason),
  budgetExhausted,
  budget: budget.state(),
};

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
console.log(`${requests} requests, ${concurrency} at a time, in ${result.elapsedMs} ms`);
console.log(`success rate   ${pct(result.successRate)} (${ok}/${requests})`);
for (const r of result.replicas) {
  const note = r.failedOnPurpose > 0 ? `, ${r.failedOnPurpose} answered 503` : "";
  console.log(`  ${r.name.padEnd(8)} ${pct(r.share).padStart(7)} of ${received} attempts${note}`);
}
console.log(
  `retries        ${result.retries} ${JSON.stringify(result.retriesByReason)}, ` +
    `${budgetExhausted} refused by the budget; budget balance now ${result.budget.balance}`,
);
// The last line is machine-readable, for scripts and the smoke test.
console.log(JSON.stringify(result));

await balancer.close();
await Promise.all(replicas.map((r) => r.close()));

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`${name}: expected a positive integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}
