import { type Clock, endpointHealth, grpcStatusOf, type Outcome, pushbackMs } from "@mesh/core";
import type { Dispatcher } from "undici";
import type { Endpoint } from "../endpoints/endpoint.js";
import type { EndpointSet } from "../endpoints/endpoint-set.js";

type Headers = Record<string, string | string[] | undefined>;
type Controller = Dispatcher.DispatchController;

/**
 * Wraps the caller's handler for one request to one endpoint: measures the round trip to the
 * response headers from the moment undici writes the request on a connected socket
 * (`onRequestStart`), so connection set-up and TLS handshakes never count as latency (as in
 * Linkerd, where an endpoint is balanced over only once it is connected), classifies the outcome with `@mesh/core`'s `endpointHealth` rule (5xx, gRPC status in headers or trailers, transport
 * errors) and reports both to the endpoint set, then forwards every callback unchanged.
 */
export class EndpointRequest implements Dispatcher.DispatchHandler {
  readonly #set: EndpointSet;
  readonly #endpoint: Endpoint;
  readonly #h: Dispatcher.DispatchHandler;
  readonly #clock: Clock;
  #start: number;
  #status = 0;
  #responded = false;
  #failed = false;
  #settled = false;

  constructor(
    set: EndpointSet,
    endpoint: Endpoint,
    handler: Dispatcher.DispatchHandler,
    clock: Clock,
    start: number,
  ) {
    this.#set = set;
    this.#endpoint = endpoint;
    this.#h = handler;
    this.#clock = clock;
    this.#start = start;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    // The request is about to be written on a connected socket: the round trip starts now.
    this.#start = this.#clock.now();
    this.#h.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Controller, status: number, headers: Headers, socket: never): void {
    this.#respond(false);
    this.#settle("success");
    this.#h.onRequestUpgrade?.(controller, status, headers, socket);
  }

  onResponseStarted(): void {
    this.#h.onResponseStarted?.();
  }

  onBodySent(chunk: Buffer): void {
    this.#h.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    this.#h.onRequestSent?.();
  }

  onResponseStart(
    controller: Controller,
    status: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    this.#status = status;
    this.#respond(endpointHealth.response(status, grpcStatusOf(headers)) === "failure");
    this.#pushback(headers);
    this.#h.onResponseStart?.(controller, status, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#h.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    // A gRPC status may arrive in trailers, after the RTT sample: it decides the outcome.
    const grpc = grpcStatusOf(trailers);
    if (grpc !== undefined) {
      this.#failed = endpointHealth.response(this.#status, grpc) === "failure";
      this.#pushback(trailers);
    }
    this.#settle(this.#failed ? "failure" : "success");
    this.#h.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    const outcome = endpointHealth.error(error);
    // An abort before the headers still bounds the RTT from below: record it as a sample.
    this.#respond(outcome === "failure");
    this.#settle(outcome);
    this.#h.onResponseError?.(controller, error);
  }

  /** `Retry-After` / `grpc-retry-pushback-ms` raise the endpoint's cost for that long. */
  #pushback(headers: Headers | null | undefined): void {
    // pushbackMs reads the two headers and returns at once when neither is there.
    const ms = pushbackMs(headers);
    if (ms !== undefined) this.#set.pushback(this.#endpoint, ms, this.#clock.now());
  }

  #respond(failed: boolean): void {
    if (this.#responded) return;
    this.#responded = true;
    this.#failed = failed;
    const now = this.#clock.now();
    this.#set.responded(this.#endpoint, now - this.#start, now);
  }

  #settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#set.settled(this.#endpoint, outcome);
  }
}
