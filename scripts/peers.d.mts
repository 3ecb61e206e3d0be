// Types for scripts/peers.mjs, which the packages' tests import by relative path.
export interface Peer {
  bins: string[];
  apt: string;
  brew: string | undefined;
  use: string;
}
export type PeerName =
  | "openssl"
  | "promtool"
  | "prometheus"
  | "redis"
  | "buildah"
  | "kubectl"
  | "nginx"
  | "haproxy"
  | "wrk"
  | "chromium";
export declare const PEERS: Record<PeerName, Peer>;
export declare const SKIP_LOG: string;
export declare function which(bin: string): string | undefined;
export declare function absentBins(name: PeerName): string[];
export declare function inCi(): boolean;
export declare function installHint(name: PeerName): string;
/** True when peer `name` is missing (recorded for the summary); throws under CI=true. */
export declare function missingPeer(name: PeerName): boolean;
export declare function clearSkipLog(): void;
export declare function skipSummary(): string[];
