import http from "node:http";

/** Counts of what the traffic generator saw. */
export interface TrafficCounts {
  sent: number;
  ok: number;
  /** Answered with a status >= 500. */
  failed: number;
  /** No answer (connection error). */
  errors: number;
}

/**
 * A steady open-loop load: `rps` requests per second of `GET /books/<n>` with `host: web`
 * into the web sidecar's inbound listener, at most `maxInFlight` at a time (beyond that a
 * tick is skipped, so a stalled mesh is not buried under a backlog).
 */
export class TrafficGenerator {
  readonly counts: TrafficCounts = { sent: 0, ok: 0, failed: 0, errors: 0 };
  readonly #target: { host: string; port: number };
  readonly #rps: number;
  readonly #maxInFlight: number;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;

  constructor(address: string, rps: number, maxInFlight = 200) {
    const at = address.lastIndexOf(":");
    this.#target = { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
    this.#rps = rps;
    this.#maxInFlight = maxInFlight;
  }

  /** Starts sending; requests are spread evenly over each second. */
  start(): void {
    const start = performance.now();
    const tick = () => {
      const due = Math.floor(((performance.now() - start) / 1000) * this.#rps);
      while (this.counts.sent < due) {
        if (this.#inFlight >= this.#maxInFlight) {
          this.counts.sent = due; // skip: do not build a backlog
          break;
        }
        this.#send();
      }
    };
    this.#timer = setInterval(tick, Math.max(5, Math.floor(1000 / this.#rps)));
  }

  #send(): void {
    const n = this.counts.sent++;
    this.#inFlight++;
    const done = (status: number) => {
      if (status === 0) this.counts.errors++;
      else if (status >= 500) this.counts.failed++;
      else this.counts.ok++;
      if (--this.#inFlight === 0) this.#idle?.();
    };
    const req = http.request(
      { ...this.#target, path: `/books/${n % 1000}`, headers: { host: "web" }, agent: this.#agent },
      (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode ?? 0));
        res.on("error", () => done(0));
      },
    );
    req.on("error", () => done(0));
    req.end();
  }

  /** Stops sending and waits (up to `graceMs`) for requests in flight, then closes sockets. */
  async stop(graceMs = 5_000): Promise<void> {
    clearInterval(this.#timer);
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#agent.destroy();
  }
}
