import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Runs an HTTP/1.1 app on `127.0.0.1:<port>` (0 = any free port), prints one JSON
 * `{"msg":"listening","address":…}` line once bound (the launcher waits for it), and exits 0
 * on SIGTERM/SIGINT or when its parent goes away (stdin closes), so a killed launcher
 * leaves no orphans.
 */
export function runApp(name: string, port: number, handler: http.RequestListener): void {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, handler);
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Requests in flight get a moment; the launcher stops traffic before it stops apps.
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, 2_000).unref();
  };
  process.on("SIGTERM", close);
  process.on("SIGINT", close);
  process.stdin.on("end", close);
  process.stdin.on("error", close);
  process.stdin.resume();
  server.listen(port, "127.0.0.1", () => {
    const { port: bound } = server.address() as AddressInfo;
    process.stdout.write(
      `${JSON.stringify({ msg: "listening", app: name, address: `127.0.0.1:${bound}`, pid: process.pid })}\n`,
    );
  });
}

/** `--name value` style flags from argv. */
export function flags(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith("--")) out[a.slice(2)] = argv[i + 1] ?? "";
  }
  return out;
}
