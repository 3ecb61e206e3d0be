import { describe, expect, it } from "vitest";
import { inClusterServer, SERVICE_ACCOUNT_DIR, serviceAccountFiles } from "../src/index.js";

// The in-cluster convention @mesh/balancer's watches and @mesh/tls-identity's TokenReview both
// follow: one copy, so the two cannot drift.
describe("Kubernetes in-cluster convention", () => {
  it("the API server from KUBERNETES_SERVICE_HOST/PORT, IPv6 in brackets, 443 by default", () => {
    expect(
      inClusterServer({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "6443" }),
    ).toBe("https://10.96.0.1:6443");
    expect(inClusterServer({ KUBERNETES_SERVICE_HOST: "fd00:10:96::1" })).toBe(
      "https://[fd00:10:96::1]:443",
    );
    expect(
      inClusterServer({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "" }),
    ).toBe("https://10.96.0.1:443");
    expect(inClusterServer({})).toBeUndefined();
    expect(inClusterServer({ KUBERNETES_SERVICE_HOST: "" })).toBeUndefined();
  });

  it("the service account's files", () => {
    expect(serviceAccountFiles()).toEqual({
      caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
      tokenFile: `${SERVICE_ACCOUNT_DIR}/token`,
      namespaceFile: `${SERVICE_ACCOUNT_DIR}/namespace`,
    });
    expect(serviceAccountFiles("/tmp/sa/").tokenFile).toBe("/tmp/sa/token");
  });
});
