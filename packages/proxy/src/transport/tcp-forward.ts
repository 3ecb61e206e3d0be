import type { Socket } from "node:net";
import { duration, optionsObject } from "@mesh/core";

/** Options of {@link forwardTcp}. @public */
export interface TcpForwardOptions {
  /** Close both sides after this many ms with no byte in either direction. Default: none. */
  idleTimeoutMs?: number;
  /** Called with the size of each chunk read from the client (and written upstream). */
  onRead?: (bytes: number) => void;
  /** Called with the size of each chunk written to the client (read from upstream). */
  onWrite?: (bytes: number) => void;
}

/**
 * How a forwarded connection ended:
 * - `closed`: both sides finished (each direction ended with a FIN);
 * - `idle`: `idleTimeoutMs` passed without traffic;
 * - `error`: one side failed (its error is in `error`); the other side was reset;
 * - `aborted`: one side closed without finishing its direction, or `close()` was called.
 *
 * @public
 */
export type TcpCloseReason = "closed" | "idle" | "error" | "aborted";

/** The summary of a finished forward (for `tcp_close_total` and logs). @public */
export interface TcpForwardResult {
  reason: TcpCloseReason;
  /** Which side failed or aborted first. */
  side?: "client" | "upstream";
  error?: Error;
  /** Bytes read from the client (sent upstream). */
  bytesRead: number;
  /** Bytes written to the client (received from upstream). */
  bytesWritten: number;
}

/** A running forward. @public */
export interface TcpForward {
  /** Settles (never rejects) when both sockets are closed. */
  readonly done: Promise<TcpForwardResult>;
  /** Bytes read from the client so far. */
  readonly bytesRead: number;
  /** Bytes written to the client so far. */
  readonly bytesWritten: number;
  /** Destroys both sockets (reason `aborted` unless already finished). */
  close(): void;
}

/** Propagates a failure as a TCP reset where the socket allows it (plain TCP), else a close. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/**
 * Copies bytes both ways between an accepted `client` socket and an `upstream` socket,
 * with backpressure (a slow reader pauses the other side), half-close (a FIN from one
 * side becomes `end()` on the other while the reverse direction keeps flowing; both
 * sockets are switched to `allowHalfOpen`), error propagation (an error on one side
 * resets the other) and an optional idle timeout. Both sockets may be TLS sockets. Bytes
 * already buffered in either socket (e.g. put back by a sniffer) are forwarded first.
 *
 * @public
 */
export function forwardTcp(
  client: Socket,
  upstream: Socket,
  options?: TcpForwardOptions,
): TcpForward {
  const o = optionsObject("options", options);
  const idleMs =
    o.idleTimeoutMs === undefined ? 0 : duration("options.idleTimeoutMs", o.idleTimeoutMs, 0, 1);
  const onRead = o.onRead;
  const onWrite = o.onWrite;
  let bytesRead = 0;
  let bytesWritten = 0;
  let result: TcpForwardResult | undefined;
  let closedCount = 0;
  let resolveDone!: (r: TcpForwardResult) => void;
  const done = new Promise<TcpForwardResult>((r) => {
    resolveDone = r;
  });
  let lastActivity = performance.now();
  let idleTimer: NodeJS.Timeout | undefined;

  const settle = (reason: TcpCloseReason, side?: "client" | "upstream", error?: Error) => {
    if (result) return;
    result = { reason, bytesRead, bytesWritten };
    if (side) result.side = side;
    if (error) result.error = error;
  };
  const abortBoth = (reason: TcpCloseReason, side?: "client" | "upstream", error?: Error) => {
    settle(reason, side, error);
    if (reason === "error") {
      reset(client);
      reset(upstream);
    } else {
      client.destroy();
      upstream.destroy();
    }
  };

  client.allowHalfOpen = true;
  upstream.allowHalfOpen = true;

  const pipe = (from: Socket, to: Socket, count: (n: number) => void) => {
    let paused = false;
    from.on("data", (chunk: Buffer) => {
      count(chunk.length);
      lastActivity = performance.now();
      if (!to.write(chunk) && !paused) {
        paused = true;
        from.pause();
        to.once("drain", () => {
          paused = false;
          from.resume();
        });
      }
    });
    from.on("end", () => to.end());
  };
  pipe(client, upstream, (n) => {
    bytesRead += n;
    onRead?.(n);
  });
  pipe(upstream, client, (n) => {
    bytesWritten += n;
    onWrite?.(n);
  });

  const watch = (socket: Socket, side: "client" | "upstream") => {
    socket.on("error", (err) => abortBoth("error", side, err));
    const onClose = () => {
      // Graceful only if this side both received a FIN and finished writing; otherwise
      // the other side must not wait for data that will never come.
      if (!result && !(socket.readableEnded && socket.writableFinished)) abortBoth("aborted", side);
      if (++closedCount === 2) {
        clearTimeout(idleTimer);
        settle("closed");
        resolveDone(result as TcpForwardResult);
      }
    };
    if (socket.closed) queueMicrotask(onClose);
    else socket.on("close", onClose);
  };
  watch(client, "client");
  watch(upstream, "upstream");

  if (idleMs > 0) {
    const check = () => {
      const idle = performance.now() - lastActivity;
      if (idle >= idleMs) abortBoth("idle");
      else idleTimer = setTimeout(check, idleMs - idle);
    };
    idleTimer = setTimeout(check, idleMs);
  }
  // Sockets handed over by a sniffer are paused with bytes put back: start them flowing.
  client.resume();
  upstream.resume();

  return {
    done,
    get bytesRead() {
      return bytesRead;
    },
    get bytesWritten() {
      return bytesWritten;
    },
    close() {
      abortBoth("aborted");
    },
  };
}
