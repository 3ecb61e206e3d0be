import { type DestinationStream, type Logger, pino } from "pino";

/** The proxy's structured logger (pino). */
export type ProxyLogger = Logger;

/** Log levels accepted in config and `MESH_PROXY_LOG__LEVEL`. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/**
 * Creates the JSON logger. Lines go to stdout by default (synchronously, so nothing is lost
 * when the process exits after shutdown).
 */
export function createLogger(
  level: LogLevel = "info",
  destination?: DestinationStream,
): ProxyLogger {
  return pino(
    {
      level,
      base: { name: "mesh-proxy", pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
