/**
 * How to start the minimal Node mTLS pair (`node-pair.mjs`, Node's floor) with the @mesh
 * pair's certificates: the one place that knows its command line, for the bench's reference
 * pairs and the proxy's perf scripts (`pair.mjs`, `grpc-stream.mjs`, `instructions.mjs`).
 */
import { fileURLToPath } from "node:url";
import { type IdentityFiles, PAIR_INBOUND_ID } from "./mesh.ts";

/** The pair's script; both roles run it (`node NODE_PAIR_SCRIPT <role> …`). */
export const NODE_PAIR_SCRIPT = fileURLToPath(new URL("./node-pair.mjs", import.meta.url));

/** Where the pair listens and forwards, and what it carries. */
export interface NodePairPlan {
  ids: { inbound: IdentityFiles; outbound: IdentityFiles };
  inPort: number;
  outPort: number;
  /** The app the inbound forwards to, e.g. `http://127.0.0.1:8080`. */
  appOrigin: string;
  /** gRPC (h2 end to end) instead of HTTP/1.1 from the client and to the app. */
  h2: boolean;
}

/** Each role's arguments after the script: certificates, ports, the peer's SPIFFE ID. */
export function nodePairArgs(plan: NodePairPlan): { inbound: string[]; outbound: string[] } {
  const tls = (f: IdentityFiles) => [
    "--cert",
    f.cert,
    "--key",
    f.key,
    "--ca",
    f.bundle,
    ...(plan.h2 ? ["--h2"] : []),
  ];
  return {
    inbound: ["inbound", String(plan.inPort), plan.appOrigin, ...tls(plan.ids.inbound)],
    outbound: [
      "outbound",
      String(plan.outPort),
      String(plan.inPort),
      ...tls(plan.ids.outbound),
      "--peer-id",
      PAIR_INBOUND_ID,
    ],
  };
}
