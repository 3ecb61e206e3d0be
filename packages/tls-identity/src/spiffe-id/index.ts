export {
  matchAny,
  matchExact,
  matchOneOf,
  matchPath,
  matchTrustDomain,
  type SpiffeIdMatcher,
} from "./matchers.js";
export {
  MAX_SPIFFE_ID_LENGTH,
  MAX_TRUST_DOMAIN_LENGTH,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeId,
  SpiffeIdError,
  type SpiffeIdRule,
  toSpiffeId,
} from "./spiffe-id.js";
export { parseWorkloadId, workloadId } from "./workload.js";
