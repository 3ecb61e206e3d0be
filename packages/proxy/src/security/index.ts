/**
 * Security building blocks of the proxy: inbound authorization, protocol sniffing, the
 * opaque-TCP transport header, TCP forwarding, mTLS glue over @mesh/tls-identity, and
 * the HTTP/1-over-HTTP/2 original-protocol header. See README.md in this folder for where
 * the proxy wires each one in.
 *
 * @packageDocumentation
 */
export * from "./authz/index.js";
export * from "./mtls/index.js";
export * from "./orig-proto/orig-proto.js";
export * from "./sniff/sniff.js";
export * from "./tcp/forward.js";
export * from "./transport-header/index.js";
