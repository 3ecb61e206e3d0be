import { type Endpoint, EndpointSet, type EndpointSetOptions, seededRandom } from "../src/index.js";
import { FakeClock } from "./helpers.js";

/** How one simulated endpoint answers its `n`-th request (1-based). */
export interface Behaviour {
  /** Round trip of a success, ms. */
  rttMs: number;
  /** Round trip of a failure, ms. Default `rttMs`. */
  failRttMs?: number;
  /** Whether the `n`-th request fails; `random` is seeded. Default never. */
  fails?: (n: number, random: () => number) => boolean;
}

/** Result of a simulation: requests answered per endpoint (index as in the behaviours). */
export interface SimulationResult {
  counts: number[];
  shares: number[];
  total: number;
  set: EndpointSet;
  clock: FakeClock;
}

/**
 * Closed-loop discrete-event simulation on a fake clock: `concurrency` requests always in
 * flight over endpoints behaving as given, until `total` responses. Deterministic (seeded).
 */
export function closedLoop(
  behaviours: readonly Behaviour[],
  { concurrency, total, seed = 7, options = {} }: SimOptions,
): SimulationResult {
  const clock = new FakeClock();
  const set = new EndpointSet({ clock, random: seededRandom(seed), accrual: false, ...options });
  const endpoints = behaviours.map((_, i) => set.add(`10.0.0.${i + 1}:80`));
  const random = seededRandom(seed + 1000);
  const sent = behaviours.map(() => 0);
  const counts = behaviours.map(() => 0);
  const queue: { at: number; i: number; ok: boolean; sentAt: number }[] = [];
  const send = () => {
    const e = set.pick()!;
    const i = endpoints.indexOf(e);
    set.start(e);
    const b = behaviours[i]!;
    const failed = b.fails?.(++sent[i]!, random) ?? false;
    const rtt = failed ? (b.failRttMs ?? b.rttMs) : b.rttMs;
    const item = { at: clock.now() + rtt, i, ok: !failed, sentAt: clock.now() };
    let k = queue.length;
    while (k > 0 && queue[k - 1]!.at > item.at) k--;
    queue.splice(k, 0, item);
  };
  for (let i = 0; i < concurrency; i++) send();
  let answered = 0;
  while (answered < total) {
    const next = queue.shift()!;
    clock.t = next.at;
    finish(set, endpoints[next.i]!, next.at - next.sentAt, next.ok);
    counts[next.i]!++;
    answered++;
    send();
  }
  return { counts, shares: counts.map((c) => c / answered), total: answered, set, clock };
}

/** Options of {@link closedLoop}. */
export interface SimOptions {
  concurrency: number;
  total: number;
  seed?: number;
  options?: EndpointSetOptions;
}

/** Completes a request now: response headers, then the outcome. */
export function finish(set: EndpointSet, e: Endpoint, rttMs: number, ok: boolean): void {
  set.responded(e, rttMs);
  set.settled(e, ok ? "success" : "failure");
}
