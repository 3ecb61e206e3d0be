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
  type AuthzPolicyConfig,
  type AuthzRequest,
  type AuthzRuleConfig,
  compileAuthzPolicy,
  DEFAULT_POLICIES,
  type DefaultPolicy,
  type NetworkConfig,
  type RouteConfig,
} from "./policy.js";
