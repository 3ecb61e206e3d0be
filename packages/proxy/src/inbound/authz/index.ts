export {
  type IpAddress,
  type IpNetwork,
  networkContains,
  parseIpAddress,
  parseNetwork,
} from "./cidr.js";
export { type AuthzDecisionEvent, authzDecisionChannel } from "./events.js";
export { compileIdentities, type IdentityMatcher } from "./identity-match.js";
export {
  type AuthzCompileOptions,
  AuthzConfigError,
  type AuthzConfigProblem,
  type AuthzDecision,
  AuthzPolicy,
  type AuthzRequest,
  compileAuthzPolicy,
} from "./policy.js";
export {
  type AuthzPolicyConfig,
  type AuthzRouteConfig,
  type AuthzRuleConfig,
  authzPolicySchema,
  DEFAULT_POLICIES,
  type DefaultPolicy,
  type NetworkConfig,
} from "./schema.js";
