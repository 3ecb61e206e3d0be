const SECRET_KEY = /(?:token|secret|password|passphrase|privateKey|credential)/i;

/**
 * Copies a configuration for display with secrets replaced by `"[redacted]"`: fields whose
 * name looks secret, and user info in URLs.
 */
export function redactConfig<T>(value: T): T {
  return redact(value) as T;
}

function redact(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => redact(v));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redact(v, k);
    return out;
  }
  if (typeof value === "string") {
    if (SECRET_KEY.test(key) && !/file$/i.test(key)) return "[redacted]";
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i, "$1[redacted]@");
  }
  return value;
}
