import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import type { InjectSettings } from "./pod.js";

/** The settings file `mesh-proxy install` puts in the `mesh-injector` ConfigMap. */
export const SETTINGS_FILE = "settings.yaml";

/** Settings without a file: plaintext between pods (no identity), the released image. */
export function defaultSettings(version: string): InjectSettings {
  return {
    image: `mesh-proxy:${version}`,
    trustDomain: "cluster.local",
    clusterDomain: "cluster.local",
  };
}

/**
 * Reads injection settings (YAML: `image`, `trustDomain`, `clusterDomain`, `identity:
 * { issuerUrl, audience, ca }`) over the defaults. Errors name the file and the field.
 */
export function parseSettings(text: string, source: string, version: string): InjectSettings {
  const raw = parseYaml(text) as Record<string, unknown> | null;
  const fail = (field: string, what: string, got: unknown): never => {
    throw new Error(`${source}: ${field}: expected ${what}, got ${JSON.stringify(got)}`);
  };
  const base = defaultSettings(version);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    fail("(top level)", "a mapping", raw);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (!["image", "trustDomain", "clusterDomain", "identity"].includes(k))
      fail(k, "one of image, trustDomain, clusterDomain, identity", k);
  const str = (field: string, v: unknown, fallback: string) => {
    if (v === undefined) return fallback;
    return typeof v === "string" && v !== "" ? v : fail(field, "a non-empty string", v);
  };
  const settings: InjectSettings = {
    image: str("image", r.image, base.image),
    trustDomain: str("trustDomain", r.trustDomain, base.trustDomain),
    clusterDomain: str("clusterDomain", r.clusterDomain, base.clusterDomain),
  };
  if (r.identity !== undefined) {
    const i = r.identity as Record<string, unknown>;
    if (i === null || typeof i !== "object") fail("identity", "a mapping", i);
    const ca = str("identity.ca", i.ca, "");
    if (!ca.includes("-----BEGIN CERTIFICATE-----"))
      fail("identity.ca", "PEM certificates", ca.slice(0, 40));
    const issuerUrl = str("identity.issuerUrl", i.issuerUrl, "");
    if (!/^https:\/\//.test(issuerUrl)) fail("identity.issuerUrl", "an https:// URL", issuerUrl);
    settings.identity = {
      issuerUrl,
      ca,
      audience: str("identity.audience", i.audience, "mesh-identity"),
    };
  }
  return settings;
}

/** Reads a settings file. */
export async function loadSettings(path: string, version: string): Promise<InjectSettings> {
  return parseSettings(await readFile(path, "utf8"), path, version);
}
