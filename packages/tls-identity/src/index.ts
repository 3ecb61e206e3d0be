export type { Clock } from "@mesh/core";
export { TrustBundle } from "./bundle/trust-bundle.js";
export * from "./ca/index.js";
export { createCsr, csrToPem, type ParsedCsr, parseCsr } from "./csr/csr.js";
export { IdentityError, type IdentityErrorCode, identityErrorCodes } from "./errors.js";
export type { IssuedEvent, RefreshFailedEvent, SvidEvent } from "./events.js";
export {
  type Authenticator,
  staticTokenAuthenticator,
  tokenFileAuthenticator,
} from "./issuer/authenticator.js";
export { type IssuerClientOptions, requestSvid } from "./issuer/client.js";
export {
  BUNDLE_PATH,
  createIssuer,
  ISSUE_PATH,
  type IssueResponse,
  type Issuer,
  type IssuerErrorBody,
  type IssuerOptions,
} from "./issuer/service.js";
export {
  DEFAULT_TOKEN_AUDIENCE,
  type KubernetesApiAccess,
  type TokenReviewAuthenticatorOptions,
  tokenReviewAuthenticator,
} from "./issuer/token-review.js";
export * from "./keys/index.js";
export {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  DEFAULT_RENEWAL,
  type RenewalPolicy,
  renewalDelay,
  retryDelay,
} from "./source/schedule.js";
export {
  type FileSourceOptions,
  type IdentitySnapshot,
  type IssuerSourceOptions,
  type SourceTimingOptions,
  SvidSource,
  type SvidSourceEvents,
  type WorkloadApiSourceOptions,
} from "./source/svid-source.js";
export * from "./spiffe-id/index.js";
export {
  type ClientIdentityOptions,
  clientTlsOptions,
  type IdentityMaterial,
  keyExchangeGroups,
  MESH_KEY_EXCHANGE_GROUPS,
  negotiatedGroup,
  serverTlsOptions,
} from "./tls/options.js";
export { type PeerExpectation, PeerIdentityError, peerSpiffeId } from "./tls/peer.js";
export { type SecureServerBinding, type SecureServerOptions, secureServer } from "./tls/server.js";
export {
  expectPerTarget,
  type UndiciConnector,
  type UndiciConnectorOptions,
  type UndiciConnectParams,
  undiciConnector,
} from "./tls/undici.js";
export {
  X509BundleSource,
  type X509BundleSourceEvents,
  type X509BundleSourceOptions,
} from "./workload-api/bundle-source.js";
export { parseCertificatesPem, spiffeIdOf } from "./x509/certificate.js";
export { X509Svid } from "./x509/svid.js";
export { DEFAULT_CLOCK_SKEW_MS, DEFAULT_SVID_TTL_MS } from "./x509/validity.js";
