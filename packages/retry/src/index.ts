export type { Clock } from "@mesh/core";
export { Backoff, type BackoffOptions, parseRetryAfter } from "./backoff/backoff.js";
export {
  type BreakerOutcome,
  type CircuitBreakerOptions,
  CircuitBreakers,
} from "./breaker/circuit-breakers.js";
export { CircuitOpenError } from "./breaker/errors.js";
export {
  RetryBudget,
  type RetryBudgetOptions,
  type RetryBudgetState,
} from "./budget/retry-budget.js";
export { type RetryErrorCode, retryErrorCodes } from "./errors.js";
export type {
  AttemptEvent,
  BreakerEvent,
  BreakerRejectedEvent,
  BreakerState,
  HedgeEvent,
  HedgeWonEvent,
  NotRetriedEvent,
  RetryEvent,
  TimeoutEvent,
} from "./events.js";
export { type HedgeOptions, HedgePolicy } from "./hedge/hedge-policy.js";
export { type HedgeBudget, HedgeRace, type HedgeStep } from "./hedge/hedge-race.js";
export { GrpcStatusSet } from "./policy/grpc.js";
export {
  defaultErrorCodes,
  defaultRetryMethods,
  RetryPolicy,
  type RetryPolicyOptions,
} from "./policy/retry-policy.js";
export { HttpStatusSet } from "./policy/status-set.js";
export {
  IdleTimeoutError,
  MeshTimeoutError,
  PerTryTimeoutError,
  RequestTimeoutError,
  type TimeoutKind,
} from "./timeout/errors.js";
export { type CircuitBreakerInterceptor, circuitBreaker } from "./undici/circuit-breaker.js";
export { RETRYABLE_HEADER } from "./undici/headers.js";
export { type HedgeInterceptorOptions, hedge } from "./undici/hedge.js";
export { type RetryInterceptorOptions, retry } from "./undici/retry.js";
export { type TimeoutOptions, type TimeoutTimers, timeout } from "./undici/timeout.js";
export type { Interceptor } from "./undici/types.js";
export { type AttemptContext, type WithRetryOptions, withRetry } from "./with-retry.js";
