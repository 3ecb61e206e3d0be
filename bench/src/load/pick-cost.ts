/**
 * Micro-benchmark of @mesh/balancer's selection: ns per `EndpointSet.pick()` at 10, 100
 * and 1000 endpoints for P2C, round-robin and least-pending, plus a full P2C cycle
 * (pick + start + responded). Run as its own pinned process; prints `RESULT [json]`.
 * Usage: `node pick-cost.ts <iterations>`.
 */
import { importMesh } from "./mesh-adapters.ts";

interface EndpointLike {
  readonly address: string;
}
interface EndpointSetLike {
  add(address: string): EndpointLike;
  pick(now?: number): EndpointLike | undefined;
  start(e: EndpointLike): void;
  responded(e: EndpointLike, rttMs: number, failed: boolean, now?: number): void;
}

const iterations = Math.max(1000, Math.min(50_000_000, Number(process.argv[2] ?? 1_000_000)));
const mod = await importMesh("balancer");
const EndpointSet = mod.EndpointSet as new (opts: Record<string, unknown>) => EndpointSetLike;

function build(strategy: string, n: number): EndpointSetLike {
  const set = new EndpointSet({ name: `pick-${strategy}-${n}`, strategy });
  for (let i = 0; i < n; i++) set.add(`10.0.${i >> 8}.${i & 255}:8080`);
  // Give the endpoints distinct load estimates, as under traffic.
  for (let i = 0; i < n * 4; i++) {
    const e = set.pick(i);
    if (e) {
      set.start(e);
      set.responded(e, 1 + (i % 7), false, i);
    }
  }
  return set;
}

function timeIt(fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(iterations, 200_000); i++) fn(i); // warm-up (JIT)
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / iterations;
}

let sink = 0;
const rows = [10, 100, 1000].map((n) => {
  const p2c = build("p2c", n);
  const rr = build("round-robin", n);
  const lp = build("least-pending", n);
  const now = 1_000_000;
  return {
    endpoints: n,
    p2c: Math.round(
      timeIt(() => {
        sink += p2c.pick(now) ? 1 : 0;
      }),
    ),
    p2cCycle: Math.round(
      timeIt((i) => {
        const e = p2c.pick(now + i / 1000);
        if (e) {
          p2c.start(e);
          p2c.responded(e, 2, false, now + i / 1000);
        }
      }),
    ),
    roundRobin: Math.round(
      timeIt(() => {
        sink += rr.pick(now) ? 1 : 0;
      }),
    ),
    leastPending: Math.round(
      timeIt(() => {
        sink += lp.pick(now) ? 1 : 0;
      }),
    ),
  };
});
process.stdout.write(`RESULT ${JSON.stringify(rows)}\n`);
if (sink < 0) process.stdout.write("unreachable\n");
