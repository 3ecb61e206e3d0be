import type { Socket } from "node:net";
import type { TcpSignals } from "@mesh/metrics";
import type { ProxyLogger } from "../log.js";
import { forwardTcp, type TcpForwardOptions, type TcpForwardResult } from "./tcp-forward.js";

/** Options of {@link relayTcp}. */
export interface RelayOptions {
  /** TCP signals of this connection's label set. */
  signals: TcpSignals;
  /** Close after this long without a byte either way (0 = never). */
  idleTimeoutMs: number;
  logger: ProxyLogger;
  /** Fields for the close log line. */
  context: Record<string, unknown>;
}

/**
 * Forwards one opaque TCP connection both ways and records it: `tcp_open_total`, bytes
 * read from the client and written to it, and `tcp_close_total` (failure when either side
 * errored) with the connection's duration.
 */
export function relayTcp(
  client: Socket,
  upstream: Socket,
  options: RelayOptions,
): Promise<TcpForwardResult> {
  const { signals } = options;
  const start = performance.now();
  signals.open();
  const fwdOptions: TcpForwardOptions = {
    onRead: (n) => signals.read(n),
    onWrite: (n) => signals.write(n),
  };
  if (options.idleTimeoutMs > 0) fwdOptions.idleTimeoutMs = options.idleTimeoutMs;
  const fwd = forwardTcp(client, upstream, fwdOptions);
  return fwd.done.then((r) => {
    signals.close(performance.now() - start, r.reason === "error");
    options.logger.debug(
      {
        ...options.context,
        reason: r.reason,
        side: r.side,
        error: r.error?.message,
        bytesRead: r.bytesRead,
        bytesWritten: r.bytesWritten,
      },
      "tcp connection closed",
    );
    return r;
  });
}
