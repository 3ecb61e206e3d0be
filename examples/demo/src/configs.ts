import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import type { DemoIssuer } from "./identity.ts";

/** What the installed proxy's config accepts, read from its JSON Schema. */
export interface ProxyFeatures {
  /** `identity:` (mTLS between sidecars) is supported. */
  identity: boolean;
  /** `inbound.policy` (authorization) is supported. */
  policy: boolean;
}

/** Reads what a `mesh-proxy` CLI supports from its config JSON Schema (`mesh-proxy schema`). */
export async function proxyFeatures(cli: string): Promise<ProxyFeatures> {
  const { stdout } = await promisify(execFile)(process.execPath, [cli, "schema"], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const schema = JSON.parse(stdout) as {
    properties?: Record<string, { properties?: Record<string, unknown> }>;
  };
  return {
    identity: schema.properties?.identity !== undefined,
    policy: schema.properties?.inbound?.properties?.policy !== undefined,
  };
}

/** A books replica as web's sidecar sees it. */
export interface BooksEndpoint {
  readonly address: string;
  readonly identity: string | undefined;
}

/** Identity settings for a sidecar, or nothing when the demo runs plaintext. */
function identityOf(name: string, issuer: DemoIssuer | undefined) {
  const w = issuer?.identities.get(name);
  if (issuer === undefined || w === undefined) return {};
  const trustDomain = new URL(w.id).hostname;
  return {
    identity: {
      trustDomain,
      id: w.id,
      // The demo issuer speaks plain HTTP on loopback; an https:// issuer would also take
      // `bundleFile`, the CA that verifies it.
      issuer: { url: issuer.url, tokenFile: w.tokenFile },
    },
  };
}

function common(name: string) {
  return {
    proxyId: name,
    admin: { listen: "127.0.0.1:0" },
    log: { level: "info" },
    shutdown: { gracePeriod: "2s" },
  };
}

/** A books replica's sidecar: inbound only, in front of the replica's app. */
export function booksSidecarConfig(
  name: string,
  app: string,
  issuer: DemoIssuer | undefined,
  features: ProxyFeatures,
): Record<string, unknown> {
  return {
    ...common(name),
    ...identityOf(name, issuer),
    inbound: {
      listen: "127.0.0.1:0",
      app,
      // Only meshed workloads may call books once identities exist.
      ...(issuer !== undefined && features.policy
        ? { policy: { default: "all-authenticated" } }
        : {}),
    },
  };
}

/**
 * web's sidecar: inbound in front of the web app (open to the unmeshed traffic generator),
 * outbound with the `books` service balanced over the three replicas' sidecars, retrying
 * 5xx once within the default retry budget.
 */
export function webSidecarConfig(
  app: string,
  books: readonly BooksEndpoint[],
  issuer: DemoIssuer | undefined,
  features: ProxyFeatures,
): Record<string, unknown> {
  return {
    ...common("web"),
    ...identityOf("web", issuer),
    outbound: {
      listen: "127.0.0.1:0",
      unknownAuthority: "deny",
      services: [
        {
          name: "books",
          discovery: {
            static: books.map((b) =>
              issuer !== undefined && b.identity !== undefined
                ? { address: b.address, identity: b.identity }
                : b.address,
            ),
          },
          retry: { on: ["5xx"] },
        },
      ],
    },
    inbound: {
      listen: "127.0.0.1:0",
      app,
      ...(issuer !== undefined && features.policy
        ? { policy: { default: "all-unauthenticated" } }
        : {}),
    },
  };
}

/** Writes a config as YAML into `dir` and returns the file. */
export function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  return file;
}
