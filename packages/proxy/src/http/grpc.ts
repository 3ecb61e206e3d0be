const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** Parses a `grpc-timeout` header (`100m`, `5S`, ...) into milliseconds; undefined if invalid. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  return Number(m[1]) * (GRPC_TIMEOUT_UNIT_MS[m[2] as string] as number);
}

/** Formats milliseconds as a `grpc-timeout` header value (millisecond precision, ≥ 1 ms). */
export function formatGrpcTimeout(ms: number): string {
  const v = Math.max(1, Math.ceil(ms));
  return v < 100_000_000 ? `${v}m` : `${Math.ceil(v / 1_000)}S`;
}

/** Percent-encodes a `grpc-message` value as the gRPC spec asks. */
export function encodeGrpcMessage(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) =>
    Array.from(
      Buffer.from(c, "utf8"),
      (b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`,
    ).join(""),
  );
}
