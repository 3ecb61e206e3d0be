/** A `request` line of a tap stream, as `GET /tap` writes it. */
export interface TapLine {
  type: "request";
  ts: number;
  direction: "inbound" | "outbound";
  method: string;
  authority: string;
  path: string;
  route?: string;
  backend?: string;
  status: number;
  grpcStatus?: number;
  latencyMs: number;
  durationMs: number;
  bytes: number;
  tls?: boolean;
  clientId?: string;
  serverId?: string;
  endpoint?: string;
  error?: string;
  headers?: Record<string, string>;
}

function ms(v: number): string {
  return v >= 100 ? `${Math.round(v)}ms` : `${Math.round(v * 100) / 100}ms`;
}

/** A value as `linkerd viz tap` prints it: bare when it has no space or quote, else quoted. */
function value(v: string): string {
  return /^[^\s"]*$/.test(v) && v !== "" ? v : JSON.stringify(v);
}

/**
 * One request as a `linkerd viz tap`-style line:
 * `end proxy=out tls=true :method=GET :authority=books :path=/books/1 route=list-books
 * :status=200 latency=1.2ms duration=1.5ms response-length=42B dst_id=spiffe://…`.
 */
export function formatTapLine(e: TapLine, admin?: string): string {
  const parts = ["end"];
  if (admin !== undefined) parts.push(`admin=${value(admin)}`);
  parts.push(`proxy=${e.direction === "inbound" ? "in" : "out"}`);
  if (e.tls !== undefined) parts.push(`tls=${e.tls}`);
  parts.push(`:method=${e.method}`, `:authority=${value(e.authority)}`, `:path=${value(e.path)}`);
  if (e.route !== undefined) parts.push(`route=${value(e.route)}`);
  if (e.backend !== undefined) parts.push(`backend=${value(e.backend)}`);
  parts.push(`:status=${e.status}`);
  if (e.grpcStatus !== undefined) parts.push(`grpc-status=${e.grpcStatus}`);
  parts.push(
    `latency=${ms(e.latencyMs)}`,
    `duration=${ms(e.durationMs)}`,
    `response-length=${e.bytes}B`,
  );
  if (e.clientId !== undefined) parts.push(`src_id=${value(e.clientId)}`);
  if (e.serverId !== undefined) parts.push(`dst_id=${value(e.serverId)}`);
  if (e.endpoint !== undefined) parts.push(`dst=${value(e.endpoint)}`);
  if (e.error !== undefined) parts.push(`error=${value(e.error)}`);
  for (const [k, v] of Object.entries(e.headers ?? {})) parts.push(`${k}=${value(v)}`);
  return parts.join(" ");
}
