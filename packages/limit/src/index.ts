export type { Clock } from "@mesh/core";
export {
  GradientLimiter,
  type GradientLimiterOptions,
  nextLimit,
} from "./concurrency/gradient-limiter.js";
export { type LimitErrorCode, limitErrorCodes, RateLimitedError } from "./errors.js";
export type {
  ConcurrencyLimitEvent,
  ConcurrencyRejectedEvent,
  QueuedEvent,
  RateLimitedEvent,
} from "./events.js";
export type { Rate } from "./rate/gcra.js";
export {
  RateLimiter,
  type RateLimiterOptions,
  type RateLimitKind,
  type RateOverride,
} from "./rate/rate-limiter.js";
export {
  type LimitRequestsOptions,
  limitRequests,
  type RequestHandler,
  refuse,
  type ServerRequest,
  type ServerResponseLike,
} from "./server/limit-requests.js";
export { type RateLimitInterceptorOptions, rateLimit } from "./undici/rate-limit.js";
