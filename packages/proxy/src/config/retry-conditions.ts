import { grpcStatusNames } from "@mesh/core";
import { defaultRetryMethods } from "@mesh/retry";
import type { ConfigProblem } from "./errors.js";
import type { HedgeConfig, ProxyConfig, RetryConfig, RouteConfig } from "./schema.js";

const GRPC_NAMES: ReadonlySet<string> = new Set(grpcStatusNames);
const IDEMPOTENT: ReadonlySet<string> = new Set(defaultRetryMethods);

/** A retry `on` list split into @mesh/retry's `http` and `grpc` options. */
export function splitRetryConditions(on: readonly string[]): { http: string[]; grpc: string[] } {
  const http: string[] = [];
  const grpc: string[] = [];
  for (const c of on) (GRPC_NAMES.has(c) ? grpc : http).push(c);
  return { http, grpc };
}

/**
 * Retry settings that can never retry anything, as warnings for `check` and the start log:
 * a zero limit or budget, or a route whose methods are all non-idempotent with only HTTP
 * conditions (gRPC conditions retry gRPC calls whatever their method; see the README).
 */
export function retryWarnings(config: ProxyConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const services = config.outbound?.services ?? [];
  services.forEach((svc, i) => {
    const at = `outbound.services[${i}]`;
    check(out, `${at}.retry`, svc.retry, undefined);
    if (svc.hedge !== undefined) checkHedge(out, `${at}.hedge`, svc.hedge, svc.retry, undefined);
    svc.routes.forEach((route, j) => {
      if (route.retry === undefined && route.match.methods === undefined) return;
      const effective: RetryConfig = { ...svc.retry, ...stripUndefined(route.retry ?? {}) };
      const hedge = route.hedge ?? svc.hedge;
      if (hedge !== undefined)
        checkHedge(
          out,
          `${at}.routes[${j}]${route.hedge ? ".hedge" : ""}`,
          hedge,
          effective,
          route,
        );
      else check(out, `${at}.routes[${j}]${route.retry ? ".retry" : ""}`, effective, route);
    });
  });
  return out;
}

function check(
  out: ConfigProblem[],
  path: string,
  retry: RetryConfig,
  route: RouteConfig | undefined,
): void {
  if (retry.on.length === 0) return;
  if (retry.limit === 0) {
    out.push({ path, message: "retries nothing: limit is 0 while `on` lists conditions" });
    return;
  }
  if (retry.budget.ratio === 0 && retry.budget.minPerSecond === 0) {
    out.push({
      path,
      message: "retries nothing: the budget allows none (ratio 0, minPerSecond 0)",
    });
    return;
  }
  const methods = route?.match.methods;
  if (methods === undefined || retry.nonIdempotent) return;
  if (methods.some((m) => IDEMPOTENT.has(m.toUpperCase()))) return;
  if (splitRetryConditions(retry.on).grpc.length > 0) return;
  out.push({
    path,
    message: `retries nothing: ${methods.join(", ")} ${methods.length === 1 ? "is" : "are"} not idempotent and \`on\` has no gRPC condition; set nonIdempotent: true to retry them`,
  });
}

/** Hedge settings that can never hedge anything: no budget, or only non-idempotent methods. */
function checkHedge(
  out: ConfigProblem[],
  path: string,
  hedge: HedgeConfig,
  retry: RetryConfig,
  route: RouteConfig | undefined,
): void {
  if (retry.budget.ratio === 0 && retry.budget.minPerSecond === 0) {
    out.push({
      path,
      message: "hedges nothing: the retry budget allows none (ratio 0, minPerSecond 0)",
    });
    return;
  }
  const methods = route?.match.methods;
  if (methods === undefined || hedge.grpcMethods.length > 0) return;
  if (methods.some((m) => IDEMPOTENT.has(m.toUpperCase()))) return;
  out.push({
    path,
    message: `hedges nothing: ${methods.join(", ")} ${methods.length === 1 ? "is" : "are"} not idempotent and grpcMethods is empty`,
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
