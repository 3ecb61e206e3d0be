export {
  CertificateAuthority,
  type CertificateAuthorityInit,
  type CertificateAuthorityOptions,
  type IssuedCertificate,
  type SignOptions,
} from "./authority.js";
export {
  createTrustAnchor,
  type IntermediateOptions,
  TrustAnchor,
  type TrustAnchorOptions,
} from "./trust-anchor.js";
