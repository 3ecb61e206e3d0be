import { IdentityError } from "../errors.js";

/**
 * The rule of the SPIFFE-ID specification a string broke. Stable; branch on it.
 *
 * @public
 */
export type SpiffeIdRule =
  | "type"
  | "empty"
  | "too-long"
  | "scheme"
  | "trust-domain-missing"
  | "trust-domain-too-long"
  | "trust-domain-chars"
  | "userinfo"
  | "port"
  | "query"
  | "fragment"
  | "path-empty-segment"
  | "path-dot-segment"
  | "path-trailing-slash"
  | "path-chars";

/**
 * Thrown by {@link parseSpiffeId} (and everything that parses IDs) when a string is not a
 * valid SPIFFE ID. `rule` names the rule it broke; `code` is always
 * `MESH_IDENTITY_INVALID_SPIFFE_ID`.
 *
 * @public
 */
export class SpiffeIdError extends IdentityError {
  /** Which rule failed. */
  readonly rule: SpiffeIdRule;
  /** The offending input (truncated to 256 characters). */
  readonly input: string;

  constructor(rule: SpiffeIdRule, input: string, detail: string) {
    const shown = input.length > 256 ? `${input.slice(0, 256)}…` : input;
    super(
      "MESH_IDENTITY_INVALID_SPIFFE_ID",
      `invalid SPIFFE ID ${JSON.stringify(shown)}: ${detail}`,
    );
    this.name = "SpiffeIdError";
    this.rule = rule;
    this.input = shown;
  }
}

/** Maximum length of a whole SPIFFE ID in bytes, per the specification. */
export const MAX_SPIFFE_ID_LENGTH = 2048;
/** Maximum length of a trust domain name, per the specification. */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const SCHEME = "spiffe://";

// Lookup tables: the parser runs on every handshake, so avoid regexes and allocation.
const TD_CHARS = new Uint8Array(128);
const PATH_CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const lowerOrDigit = (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9");
  const sym = ch === "." || ch === "-" || ch === "_";
  if (lowerOrDigit || sym) TD_CHARS[c] = 1;
  if (lowerOrDigit || sym || (ch >= "A" && ch <= "Z")) PATH_CHARS[c] = 1;
}

function tdRuleFor(input: string, ch: string): SpiffeIdError {
  if (ch === "@")
    return new SpiffeIdError("userinfo", input, "user info is not allowed before the trust domain");
  if (ch === ":")
    return new SpiffeIdError("port", input, "a port is not allowed in the trust domain");
  if (ch === "?") return new SpiffeIdError("query", input, "a query is not allowed");
  if (ch === "#") return new SpiffeIdError("fragment", input, "a fragment is not allowed");
  return new SpiffeIdError(
    "trust-domain-chars",
    input,
    `trust domain may contain only lowercase letters, digits, ".", "-" and "_" (found ${JSON.stringify(ch)})`,
  );
}

/** Validates a bare trust-domain name; returns a SpiffeIdError or undefined. */
function checkTrustDomain(input: string, td: string): SpiffeIdError | undefined {
  if (td.length === 0)
    return new SpiffeIdError("trust-domain-missing", input, "the trust domain is empty");
  if (td.length > MAX_TRUST_DOMAIN_LENGTH)
    return new SpiffeIdError(
      "trust-domain-too-long",
      input,
      `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`,
    );
  for (let i = 0; i < td.length; i++) {
    const c = td.charCodeAt(i);
    if (c >= 128 || TD_CHARS[c] === 0) return tdRuleFor(input, td[i] as string);
  }
  return undefined;
}

/** Validates a path (empty or starting with "/"); returns a SpiffeIdError or undefined. */
function checkPath(input: string, path: string): SpiffeIdError | undefined {
  if (path.length === 0) return undefined;
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 47; /* "/" sentinel at the end */
    if (c === 47) {
      const len = i - segStart;
      if (len === 0) {
        if (i === path.length)
          return new SpiffeIdError("path-trailing-slash", input, "the path must not end with /");
        return new SpiffeIdError("path-empty-segment", input, "the path has an empty segment (//)");
      }
      if (
        path.charCodeAt(segStart) === 46 &&
        (len === 1 || (len === 2 && path.charCodeAt(segStart + 1) === 46))
      )
        return new SpiffeIdError(
          "path-dot-segment",
          input,
          'the path must not contain "." or ".." segments',
        );
      segStart = i + 1;
      continue;
    }
    if (c >= 128 || PATH_CHARS[c] === 0) {
      const ch = path[i] as string;
      if (ch === "?") return new SpiffeIdError("query", input, "a query is not allowed");
      if (ch === "#") return new SpiffeIdError("fragment", input, "a fragment is not allowed");
      return new SpiffeIdError(
        "path-chars",
        input,
        `path segments may contain only letters, digits, ".", "-" and "_" (found ${JSON.stringify(ch)})`,
      );
    }
  }
  return undefined;
}

/**
 * A validated SPIFFE ID: `spiffe://<trustDomain><path>`. Immutable; create one with
 * {@link parseSpiffeId} or {@link SpiffeId.fromSegments}.
 *
 * @public
 */
export class SpiffeId {
  /** The trust domain name, e.g. `prod.example.org`. */
  readonly trustDomain: string;
  /** The path, `""` or starting with `/`, e.g. `/ns/web/sa/frontend`. */
  readonly path: string;
  readonly #text: string;

  private constructor(trustDomain: string, path: string) {
    this.trustDomain = trustDomain;
    this.path = path;
    this.#text = `${SCHEME}${trustDomain}${path}`;
  }

  /** @internal Used by the parser after validation. */
  static unsafe(trustDomain: string, path: string): SpiffeId {
    return new SpiffeId(trustDomain, path);
  }

  /**
   * Builds an ID from a trust domain and path segments, validating both.
   *
   * @example `SpiffeId.fromSegments("example.org", "ns", "web", "sa", "frontend")`
   */
  static fromSegments(trustDomain: string, ...segments: string[]): SpiffeId {
    // A "/" inside a part would silently add segments (ns "a/sa/admin"): refuse it.
    for (const s of segments)
      if (typeof s !== "string" || s.includes("/"))
        throw new SpiffeIdError(
          "path-chars",
          `${SCHEME}${trustDomain}/${segments.join("/")}`,
          `segment ${JSON.stringify(s)} must not contain "/"`,
        );
    const path = segments.length === 0 ? "" : `/${segments.join("/")}`;
    return parseSpiffeId(`${SCHEME}${trustDomain}${path}`);
  }

  /** The path split into segments (`[]` for the trust domain's own ID). */
  get segments(): string[] {
    return this.path.length === 0 ? [] : this.path.slice(1).split("/");
  }

  /** True when both IDs are the same string. */
  equals(other: SpiffeId | string): boolean {
    return this.#text === (typeof other === "string" ? other : other.toString());
  }

  /** True when this ID belongs to `trustDomain`. */
  memberOf(trustDomain: string): boolean {
    return this.trustDomain === trustDomain;
  }

  /** The canonical `spiffe://...` form. */
  toString(): string {
    return this.#text;
  }

  toJSON(): string {
    return this.#text;
  }
}

/**
 * Parses and validates a SPIFFE ID per the SPIFFE-ID specification: the `spiffe` scheme
 * (lowercase), a trust domain of lowercase letters, digits, `.`, `-` and `_` (at most 255
 * characters), an optional path whose segments use letters, digits, `.`, `-` and `_`
 * with no empty, `.` or `..` segments and no trailing slash; no user info, port, query or
 * fragment; at most 2048 bytes in total.
 *
 * @throws {@link SpiffeIdError} naming the rule that failed.
 * @public
 */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== "string")
    throw new SpiffeIdError("type", String(input), `expected a string, got ${typeof input}`);
  if (input.length === 0) throw new SpiffeIdError("empty", input, "the ID is empty");
  if (input.length > MAX_SPIFFE_ID_LENGTH)
    throw new SpiffeIdError("too-long", input, `longer than ${MAX_SPIFFE_ID_LENGTH} bytes`);
  if (!input.startsWith(SCHEME))
    throw new SpiffeIdError("scheme", input, 'the scheme must be "spiffe://" (lowercase)');
  const slash = input.indexOf("/", SCHEME.length);
  const td = slash === -1 ? input.slice(SCHEME.length) : input.slice(SCHEME.length, slash);
  const path = slash === -1 ? "" : input.slice(slash);
  const tdError = checkTrustDomain(input, td);
  if (tdError) throw tdError;
  const pathError = checkPath(input, path);
  if (pathError) throw pathError;
  return SpiffeId.unsafe(td, path);
}

/**
 * Validates a bare trust-domain name (`example.org`), or a `spiffe://example.org` ID, and
 * returns the name.
 *
 * @throws {@link SpiffeIdError}
 * @public
 */
export function parseTrustDomain(input: string): string {
  if (typeof input === "string" && input.startsWith(SCHEME)) {
    const id = parseSpiffeId(input);
    if (id.path !== "")
      throw new SpiffeIdError("trust-domain-chars", input, "a trust domain has no path");
    return id.trustDomain;
  }
  if (typeof input !== "string")
    throw new SpiffeIdError("type", String(input), `expected a string, got ${typeof input}`);
  const err = checkTrustDomain(input, input);
  if (err) throw err;
  return input;
}

/** Returns the SpiffeId for `id`, parsing it when it is a string. */
export function toSpiffeId(id: SpiffeId | string): SpiffeId {
  return typeof id === "string" ? parseSpiffeId(id) : id;
}
