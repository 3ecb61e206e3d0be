import { createTrustAnchor, type IdentityMaterial } from "../src/index.js";

/** One trust domain, one CA: a server (`api`) and a client (`web`) identity for mTLS tests. */
export const anchor = createTrustAnchor({ trustDomain: "prod.example" });
export const ca = anchor.createAuthority();
export const bundle = anchor.bundle;
export const SERVER_ID = "spiffe://prod.example/ns/prod/sa/api";
export const CLIENT_ID = "spiffe://prod.example/ns/prod/sa/web";
export const server: IdentityMaterial = { svid: ca.issue(SERVER_ID), bundle };
export const client: IdentityMaterial = { svid: ca.issue(CLIENT_ID), bundle };
