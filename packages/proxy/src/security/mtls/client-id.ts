import type { SpiffeId } from "@mesh/tls-identity";

/** The header that carries the verified client identity to the application. @public */
export const CLIENT_ID_HEADER = "mesh-client-id";

/**
 * Removes every incoming `mesh-client-id` (any letter case; a client could forge one)
 * and, when the client was authenticated by mTLS, sets the verified ID. Mutates `headers`
 * (a node `IncomingHttpHeaders`-style object or any string-keyed header record).
 *
 * @public
 */
export function setClientIdHeader(
  headers: Record<string, unknown>,
  clientId: SpiffeId | string | undefined,
): void {
  delete headers[CLIENT_ID_HEADER];
  for (const key in headers)
    if (key.length === CLIENT_ID_HEADER.length && key.toLowerCase() === CLIENT_ID_HEADER)
      delete headers[key];
  if (clientId !== undefined && clientId !== "") headers[CLIENT_ID_HEADER] = String(clientId);
}

/**
 * The same for a flat raw header list (`[name, value, name, value, ...]`, as
 * `IncomingMessage.rawHeaders`): returns a new list without any `mesh-client-id` and with
 * the verified one appended when given.
 *
 * @public
 */
export function withClientIdRaw(
  rawHeaders: readonly string[],
  clientId: SpiffeId | string | undefined,
): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === CLIENT_ID_HEADER.length && name.toLowerCase() === CLIENT_ID_HEADER)
      continue;
    out.push(name, rawHeaders[i + 1] as string);
  }
  if (clientId !== undefined && clientId !== "") out.push(CLIENT_ID_HEADER, String(clientId));
  return out;
}
