export * from "./bundle-watch.js";
export * from "./client-id.js";
export * from "./errors.js";
export * from "./identity.js";
export * from "./inbound.js";
export * from "./outbound.js";
