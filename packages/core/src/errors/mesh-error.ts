/**
 * Base of the runtime errors every `@mesh` package throws for a caller to branch on, like
 * undici's `UND_ERR_*`: `code` is stable across releases (`MESH_<PACKAGE>_<WHAT>`), messages
 * are not. Each package exports the list of its codes (`retryErrorCodes`, …).
 */
export class MeshError<Code extends string = string> extends Error {
  /** Stable machine-readable code. */
  readonly code: Code;

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MeshError";
    this.code = code;
  }
}

/**
 * Whether `err` is a {@link MeshError} (with `code`, when given). Recognised by shape too
 * (an `Error` whose `code` starts with `MESH_`), so a second copy of this package in the
 * dependency tree does not break the check.
 */
export function isMeshError<Code extends string>(
  err: unknown,
  code?: Code,
): err is MeshError<Code> {
  if (!(err instanceof Error)) return false;
  const c = (err as { code?: unknown }).code;
  if (typeof c !== "string" || !c.startsWith("MESH_")) return false;
  return code === undefined || c === code;
}
