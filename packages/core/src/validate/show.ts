const LIMIT = 80;

/**
 * Renders a bad value for an error message, compactly and without throwing: strings quoted,
 * objects as (truncated) JSON, arrays and functions named rather than dumped.
 */
export function show(value: unknown): string {
  if (typeof value === "string") return clip(JSON.stringify(value));
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return value.toString();
  if (Array.isArray(value)) return "an array";
  if (value === null || typeof value !== "object") return String(value);
  try {
    return clip(JSON.stringify(value));
  } catch {
    return "an object";
  }
}

function clip(text: string): string {
  return text.length > LIMIT ? `${text.slice(0, LIMIT - 3)}...` : text;
}
