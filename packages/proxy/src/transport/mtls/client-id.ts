import { removeHeaderInPlace } from "@mesh/core";
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
 * The same for a flat raw header list the caller owns (`[name, value, …]`), in place:
 * removes every `mesh-client-id` and appends the verified one when given. No copy, so the
 * proxy's per-request path allocates nothing here.
 */
export function setClientIdRaw(headers: string[], clientId: SpiffeId | string | undefined): void {
  removeHeaderInPlace(headers, CLIENT_ID_HEADER);
  if (clientId !== undefined && clientId !== "") headers.push(CLIENT_ID_HEADER, String(clientId));
}
