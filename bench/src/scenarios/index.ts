/** The scenario registry, in the order `npm run bench` runs them. */
import type { BenchContext } from "../lib/context.ts";
import type { ScenarioOutput } from "../lib/result.ts";
import { adaptiveConcurrency } from "./adaptive-concurrency.ts";
import { balancer } from "./balancer.ts";
import { grpc } from "./grpc.ts";
import { hedging } from "./hedging.ts";
import { identity } from "./identity.ts";
import { k8sChurn } from "./k8s-churn.ts";
import { metricsCost } from "./metrics-cost.ts";
import { overhead } from "./overhead.ts";
import { pushback } from "./pushback.ts";
import { rateLimit } from "./rate-limit.ts";
import { retryStorm } from "./retry-storm.ts";
import { rotation } from "./rotation.ts";
import { successRate } from "./success-rate.ts";

/** A runnable scenario. */
export interface Scenario {
  describe: string;
  run(ctx: BenchContext): Promise<ScenarioOutput>;
}

/** Every scenario by name, in run order. */
export const SCENARIOS: Record<string, Scenario> = {
  overhead: {
    describe: "latency added, max rps, CPU and RSS of each proxy vs direct",
    run: overhead,
  },
  grpc: { describe: "unary and streaming gRPC through the sidecar pair vs direct", run: grpc },
  balancer: {
    describe:
      "P2C Peak-EWMA vs round-robin, least-pending, BalancedPool with a slow/failing/degrading endpoint",
    run: balancer,
  },
  "retry-storm": {
    describe: "retry amplification against a failing backend, success rate with transient faults",
    run: retryStorm,
  },
  hedging: {
    describe:
      "tail latency when one of five endpoints stalls 1 % of requests for 500 ms, P2C with and without hedge()",
    run: hedging,
  },
  "adaptive-concurrency": {
    describe:
      "an app whose latency rises with concurrency at 3× its capacity, with and without @mesh/limit's gradient limiter",
    run: adaptiveConcurrency,
  },
  "rate-limit": {
    describe:
      "a noisy and a polite meshed client sharing an app: inbound rate limits (total, per identity, override) and outbound ones vs no limit",
    run: rateLimit,
  },
  pushback: {
    describe:
      "one of three endpoints answers 503/429 + Retry-After: 2 for a while, mesh-proxy with and without balancer pushback",
    run: pushback,
  },
  "success-rate": {
    describe:
      "an endpoint failing 40 % but never twice in a row, failure accrual consecutive-failures vs success-rate",
    run: successRate,
  },
  identity: {
    describe: "SVID issuances/s and mTLS handshakes/s, ECDSA P-256 vs RSA-2048",
    run: identity,
  },
  "metrics-cost": {
    describe: "pass-through proxy throughput with @mesh/metrics on vs off",
    run: metricsCost,
  },
  rotation: {
    describe: "10 s certificates rotating under HTTP/1.1 + gRPC load through the sidecar pair",
    run: rotation,
  },
  "k8s-churn": {
    describe:
      "a rolling update of a 1000-endpoint Service (EndpointSlices from the fake API server, 10 updates/s) under 1000 rps through mesh-proxy; endpoints on 127.0.0.1–.10 × N ports of one backend process, since a slice's endpoints share its ports",
    run: k8sChurn,
  },
};
