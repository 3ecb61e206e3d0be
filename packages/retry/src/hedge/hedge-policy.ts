import {
  duration,
  integerIn,
  nonEmptyString,
  type OptionNames,
  optionsObject,
  typeError,
} from "@mesh/core";
import { RetryBudget, type RetryBudgetOptions } from "../budget/retry-budget.js";
import { GrpcStatusSet } from "../policy/grpc.js";
import { defaultRetryMethods } from "../policy/retry-policy.js";
import { HttpStatusSet } from "../policy/status-set.js";

/** Options of the {@link hedge} interceptor (gRPC A6 hedging policy). */
export interface HedgeOptions {
  /** Name carried by events. Default: the budget's name. */
  name?: string;
  /** How long to wait for an answer before sending the next hedge, in ms. Required. */
  delay: number;
  /** Most attempts per request, the original included, 2..5 (A6's cap). Default 2. */
  maxAttempts?: number;
  /**
   * Answers that do not end the race (A6's `nonFatalStatusCodes`): an attempt answering one
   * of them is dropped and the next hedge is sent at once; only when nothing else runs or
   * may be sent is it returned. Default: none (every answer is final).
   */
  nonFatal?: {
    /** HTTP statuses, Linkerd syntax (`5xx`, `503`, `gateway-error`). */
    http?: string | readonly string[];
    /** gRPC statuses (`unavailable`), read from trailers-only responses. */
    grpc?: string | readonly (string | number)[];
  };
  /** Methods hedged. Default the idempotent ones: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, QUERY. */
  methods?: readonly string[];
  /**
   * gRPC methods that may be hedged (gRPC calls are POSTs, hedged only when listed):
   * `/pkg.Service/Method`, or `/pkg.Service/*` for every method of a service.
   */
  grpcMethods?: readonly string[];
  /** Largest in-memory request body hedged, in bytes. Default 64 KiB. Streamed bodies are never hedged. */
  maxReplayBytes?: number;
  /**
   * The budget hedges draw on, shared with retries: a {@link RetryBudget}, options for a new
   * one, or `false` for none (not recommended: a slow fleet would see its load multiplied).
   * Default: a new budget with Linkerd's defaults.
   */
  budget?: RetryBudget | RetryBudgetOptions | false;
}

const hedgeOptionNames: OptionNames = {
  known: [
    "name",
    "delay",
    "maxAttempts",
    "nonFatal",
    "methods",
    "grpcMethods",
    "maxReplayBytes",
    "budget",
  ],
  hints: {
    hedgingDelay: "delay",
    hedgeDelay: "delay",
    attempts: "maxAttempts",
    limit: "maxAttempts",
    nonFatalStatusCodes: "nonFatal",
    grpc: "grpcMethods",
    retryBudget: "budget",
  },
};

/** A validated hedging policy. Share one across requests of a route. */
export class HedgePolicy {
  readonly name: string;
  readonly delay: number;
  readonly maxAttempts: number;
  readonly nonFatalHttp: HttpStatusSet;
  readonly nonFatalGrpc: GrpcStatusSet;
  readonly methods: ReadonlySet<string>;
  readonly #grpcExact: ReadonlySet<string>;
  readonly #grpcServices: readonly string[];
  readonly maxReplayBytes: number;
  readonly budget: RetryBudget | undefined;

  constructor(options: HedgeOptions, path = "hedge") {
    if (options === undefined) throw typeError(path, "an options object with delay", options);
    const o = optionsObject<HedgeOptions>(path, options, hedgeOptionNames);
    if (o.budget instanceof RetryBudget) this.budget = o.budget;
    else if (o.budget === false) this.budget = undefined;
    else this.budget = new RetryBudget(o.budget);
    this.name = nonEmptyString(`${path}.name`, o.name, this.budget?.name ?? "default");
    if (o.delay === undefined) throw typeError(`${path}.delay`, "a duration in ms", undefined);
    this.delay = duration(`${path}.delay`, o.delay, 0, 0, 2_147_483_647);
    this.maxAttempts = integerIn(`${path}.maxAttempts`, o.maxAttempts, 2, 2, 5);
    const nonFatal = optionsObject(`${path}.nonFatal`, o.nonFatal, {
      known: ["http", "grpc"],
      hints: {},
    });
    this.nonFatalHttp = new HttpStatusSet(nonFatal.http ?? [], `${path}.nonFatal.http`);
    this.nonFatalGrpc = new GrpcStatusSet(nonFatal.grpc ?? [], `${path}.nonFatal.grpc`);
    this.methods = new Set(
      strings(`${path}.methods`, o.methods, defaultRetryMethods).map((m) => m.toUpperCase()),
    );
    const grpc = strings(`${path}.grpcMethods`, o.grpcMethods, []);
    for (const m of grpc)
      if (!/^\/[^/\s]+\/(?:[^/\s*]+|\*)$/.test(m))
        throw typeError(
          `${path}.grpcMethods`,
          'gRPC methods like "/pkg.Service/Method" or "/pkg.Service/*"',
          m,
        );
    this.#grpcExact = new Set(grpc.filter((m) => !m.endsWith("/*")));
    this.#grpcServices = grpc.filter((m) => m.endsWith("/*")).map((m) => m.slice(0, -1));
    this.maxReplayBytes = integerIn(
      `${path}.maxReplayBytes`,
      o.maxReplayBytes,
      64 * 1024,
      0,
      1 << 30,
    );
  }

  /** Whether a gRPC call to `path` (`/pkg.Service/Method`) may be hedged. */
  allowsGrpcMethod(path: string): boolean {
    if (this.#grpcExact.has(path)) return true;
    for (const prefix of this.#grpcServices) if (path.startsWith(prefix)) return true;
    return false;
  }

  /** Records an original request in the budget. */
  deposit(): void {
    this.budget?.deposit();
  }
}

function strings(path: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v.length > 0))
    throw typeError(path, "an array of non-empty strings", value);
  return value as string[];
}
