import { readFile } from "node:fs/promises";
import {
  duration,
  inClusterServer,
  optionsObject,
  serviceAccountFiles,
  typeError,
} from "@mesh/core";
import { IdentityError } from "../errors.js";
import { parseTrustDomain, SpiffeId } from "../spiffe-id/spiffe-id.js";
import type { Authenticator } from "./authenticator.js";
import { post } from "./client.js";

/** The audience a projected service-account token for the issuer carries by default. */
export const DEFAULT_TOKEN_AUDIENCE = "mesh-identity";

/** How the issuer reaches the Kubernetes API server. Default: in-cluster. @public */
export interface KubernetesApiAccess {
  /** Base URL. Default `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`. */
  server?: string;
  /** PEM CA of the API server. Default the service account's `ca.crt`. */
  ca?: string | Buffer;
  /** The issuer's own token file, re-read per request. Default the service account's `token`. */
  tokenFile?: string;
  /** Or a fixed token. */
  token?: string;
}

/** Options of {@link tokenReviewAuthenticator}. @public */
export interface TokenReviewAuthenticatorOptions {
  /** The trust domain the SPIFFE IDs are in. */
  trustDomain: string;
  /**
   * Audiences the workload token must be for (`TokenReview.spec.audiences`). Default
   * `["mesh-identity"]`: project the token with that audience (and a short expiry).
   */
  audiences?: string[];
  /** The API server. Default in-cluster (the issuer's own service account). */
  api?: KubernetesApiAccess;
  /** Timeout of each API request, ms. Default 5 000. */
  timeoutMs?: number;
}

interface Conn {
  url: URL;
  ca: string | Buffer | undefined;
  token: () => Promise<string | undefined>;
}

async function connection(api: KubernetesApiAccess = {}): Promise<Conn> {
  const server = api.server ?? inClusterServer();
  if (server === undefined)
    throw new IdentityError(
      "MESH_IDENTITY_AUTHENTICATOR_SETUP",
      "api.server: expected the API server URL (or KUBERNETES_SERVICE_HOST in a pod), got nothing",
    );
  if (!/^https?:\/\//.test(server)) throw typeError("api.server", "an http(s):// URL", server);
  // The issuer's own service account (the in-cluster convention, as @mesh/core names it).
  const sa = serviceAccountFiles();
  let ca = api.ca;
  if (ca === undefined && api.server === undefined) ca = await readFile(sa.caFile);
  const tokenFile = api.tokenFile ?? (api.token === undefined ? sa.tokenFile : undefined);
  return {
    url: new URL(server),
    ca,
    token: async () =>
      tokenFile !== undefined ? (await readFile(tokenFile, "utf8")).trim() : api.token,
  };
}

async function postJson<T>(c: Conn, path: string, body: unknown, timeoutMs: number): Promise<T> {
  const text = JSON.stringify(body);
  const url = new URL(path, c.url);
  const token = await c.token();
  const res = await post(
    url,
    Buffer.from(text),
    {
      accept: "application/json",
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    c.ca,
    timeoutMs,
  ).catch((cause: Error) => {
    throw new IdentityError(
      "MESH_IDENTITY_AUTHENTICATOR_UNAVAILABLE",
      `Kubernetes API ${url.origin}${path}: ${cause.message}`,
      { cause },
    );
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.text);
  } catch {
    parsed = undefined;
  }
  if (res.status < 200 || res.status > 299 || parsed === undefined) {
    const message = (parsed as { message?: string } | undefined)?.message ?? res.text.slice(0, 200);
    throw new IdentityError(
      "MESH_IDENTITY_AUTHENTICATOR_UNAVAILABLE",
      `Kubernetes API ${url.origin}${path} answered ${res.status}: ${message}`,
    );
  }
  return parsed as T;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  user?: { username?: string };
  audiences?: string[];
}

const SA_USER =
  /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

/**
 * An {@link Authenticator} for Kubernetes workloads: the bearer token is a projected
 * ServiceAccount token, verified with a `TokenReview` (`authentication.k8s.io/v1`) for the
 * configured audiences. It must come back `authenticated` with no `error`, for a user
 * `system:serviceaccount:NS:SA`, which becomes `spiffe://<trust-domain>/ns/NS/sa/SA`; the issuer
 * then refuses (403, saying why) a CSR for any other ID. A refused token throws
 * `MESH_IDENTITY_UNAUTHENTICATED` with the API server's reason (the issuer answers 401); an
 * unreachable API server `MESH_IDENTITY_AUTHENTICATOR_UNAVAILABLE` (503, the workload retries).
 *
 * On creation it asks a `SelfSubjectAccessReview` whether it may `create tokenreviews`, and
 * rejects with `MESH_IDENTITY_AUTHENTICATOR_SETUP` naming the missing permission if not, so a
 * missing ClusterRoleBinding fails the issuer's start instead of every workload's CSR.
 *
 * @public
 */
export async function tokenReviewAuthenticator(
  options: TokenReviewAuthenticatorOptions,
): Promise<Authenticator> {
  if (options === undefined)
    throw typeError("options", "{ trustDomain, audiences?, api? }", options);
  optionsObject("tokenReviewAuthenticator", options, {
    known: ["trustDomain", "audiences", "api", "timeoutMs"],
    hints: { audience: "audiences" },
  });
  if (options.api !== undefined)
    optionsObject("tokenReviewAuthenticator.api", options.api, {
      known: ["server", "ca", "tokenFile", "token"],
    });
  const trustDomain = parseTrustDomain(options.trustDomain);
  const audiences = options.audiences ?? [DEFAULT_TOKEN_AUDIENCE];
  if (!Array.isArray(audiences) || audiences.some((a) => typeof a !== "string" || a === ""))
    throw typeError("options.audiences", "a list of non-empty strings", audiences);
  const timeoutMs = duration("tokenReviewAuthenticator.timeoutMs", options.timeoutMs, 5_000, 1);
  const conn = await connection(options.api);
  const review = await postJson<{ status?: { allowed?: boolean; reason?: string } }>(
    conn,
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: {
        resourceAttributes: {
          group: "authentication.k8s.io",
          resource: "tokenreviews",
          verb: "create",
        },
      },
    },
    timeoutMs,
  ).catch((err: IdentityError) => {
    throw new IdentityError(
      "MESH_IDENTITY_AUTHENTICATOR_SETUP",
      `cannot check the issuer's permission to create tokenreviews: ${err.message}`,
      { cause: err },
    );
  });
  if (review.status?.allowed !== true)
    throw new IdentityError(
      "MESH_IDENTITY_AUTHENTICATOR_SETUP",
      `the issuer may not create tokenreviews.authentication.k8s.io (SelfSubjectAccessReview: ${review.status?.reason || "denied"}); bind its service account to the ClusterRole system:auth-delegator`,
    );

  return {
    async authenticate(token) {
      const answer = await postJson<{ status?: TokenReviewStatus }>(
        conn,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token, audiences },
        },
        timeoutMs,
      );
      const s = answer.status ?? {};
      if (s.authenticated !== true || s.error)
        throw new IdentityError(
          "MESH_IDENTITY_UNAUTHENTICATED",
          `TokenReview: not authenticated${s.error ? ` (${s.error})` : ""}`,
        );
      if (s.audiences !== undefined && !audiences.some((a) => s.audiences?.includes(a)))
        throw new IdentityError(
          "MESH_IDENTITY_UNAUTHENTICATED",
          `TokenReview: the token is for ${JSON.stringify(s.audiences)}, not ${JSON.stringify(audiences)}`,
        );
      const m = SA_USER.exec(s.user?.username ?? "");
      if (!m)
        throw new IdentityError(
          "MESH_IDENTITY_UNAUTHENTICATED",
          `TokenReview: ${JSON.stringify(s.user?.username)} is not a service account (system:serviceaccount:<ns>:<sa>)`,
        );
      return SpiffeId.fromSegments(trustDomain, "ns", m[1] as string, "sa", m[3] as string);
    },
  };
}
