import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { parseEndpointsFile } from "@mesh/balancer";
import { parseCertificatesPem, TrustBundle, X509Svid } from "@mesh/tls-identity";
import { workloadApiAddress } from "../transport/mtls/identity.js";
import type { ConfigProblem } from "./errors.js";
import type { DiscoveryConfig, ProxyConfig } from "./schema.js";

/** Where relative paths in a config are resolved, as the running proxy resolves them. */
export interface ConfigFileBases {
  /** Identity files (`identity.files.*`, `identity.issuer.*File`): the config file's directory. */
  identity: string;
  /** Discovery files (`discovery.file.path`): the proxy's working directory. */
  discovery: string;
}

/**
 * Checks that every file a valid config names exists and parses the way the proxy will read
 * it: the identity's certificate and key (an X.509-SVID for `identity.id`, the key matching),
 * its trust bundle, the issuer's token file and CA bundle, that the Workload API socket
 * exists and is a socket, and every discovery file. Each
 * problem names the config field and the file (`identity.files.cert: cannot read
 * /etc/mesh/cert.pem: ENOENT …`). Used by `mesh-proxy check`; at start the proxy still
 * waits for identity files to appear (they may be written after it starts).
 */
export async function checkConfigFiles(
  config: ProxyConfig,
  bases: ConfigFileBases,
): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const read = async (path: string, file: string): Promise<Buffer | undefined> => {
    try {
      return await readFile(file);
    } catch (err) {
      problems.push({ path, message: `cannot read ${file}: ${(err as Error).message}` });
      return undefined;
    }
  };
  const parse = (path: string, file: string, what: string, check: () => void): void => {
    try {
      check();
    } catch (err) {
      problems.push({ path, message: `expected ${what} in ${file}: ${(err as Error).message}` });
    }
  };

  const identity = config.identity;
  if (identity?.files !== undefined) {
    const at = (name: string) => resolve(bases.identity, identity.files![name as "cert"]);
    const [cert, key, bundle] = await Promise.all([
      read("identity.files.cert", at("cert")),
      read("identity.files.key", at("key")),
      read("identity.files.bundle", at("bundle")),
    ]);
    if (cert !== undefined) {
      parse("identity.files.cert", at("cert"), "an X.509-SVID certificate chain (PEM)", () => {
        parseCertificatesPem(cert, "certificate");
        if (key === undefined) return;
        const svid = X509Svid.fromPem(cert, key);
        const id = svid.spiffeId.toString();
        if (id !== identity.id)
          throw new Error(`it is for ${id}, but identity.id is ${identity.id}`);
      });
    }
    if (bundle !== undefined)
      parse("identity.files.bundle", at("bundle"), "a PEM trust bundle", () =>
        TrustBundle.fromPem(bundle),
      );
  }
  if (identity?.issuer !== undefined) {
    const tokenFile = resolve(bases.identity, identity.issuer.tokenFile);
    const token = await read("identity.issuer.tokenFile", tokenFile);
    if (token !== undefined && token.toString("utf8").trim() === "")
      problems.push({
        path: "identity.issuer.tokenFile",
        message: `expected a bearer token in ${tokenFile}, got an empty file`,
      });
    if (identity.issuer.bundleFile !== undefined) {
      const bundleFile = resolve(bases.identity, identity.issuer.bundleFile);
      const ca = await read("identity.issuer.bundleFile", bundleFile);
      if (ca !== undefined)
        parse("identity.issuer.bundleFile", bundleFile, "PEM CA certificates", () =>
          parseCertificatesPem(ca, "issuer CA bundle"),
        );
    }
  }

  if (identity?.workloadApi !== undefined) {
    const address = workloadApiAddress(identity.workloadApi.socket, bases.identity);
    const socket = address.startsWith("unix://") ? address.slice("unix://".length) : address;
    const path = "identity.workloadApi.socket";
    try {
      const s = await stat(socket);
      if (!s.isSocket())
        problems.push({
          path,
          message: `expected the Workload API's Unix socket at ${socket}, got a ${s.isDirectory() ? "directory" : "file that is not a socket"}`,
        });
    } catch (err) {
      problems.push({ path, message: `cannot find ${socket}: ${(err as Error).message}` });
    }
  }

  for (const [path, discovery] of discoveries(config)) {
    if (discovery.file === undefined) continue;
    const file = resolve(bases.discovery, discovery.file.path);
    const text = await read(`${path}.file.path`, file);
    if (text !== undefined)
      parse(`${path}.file.path`, file, "a JSON or YAML list of endpoints", () =>
        parseEndpointsFile(text.toString("utf8"), file),
      );
  }
  return problems;
}

/** Every discovery section of the outbound services, with its config path. */
function* discoveries(config: ProxyConfig): Generator<[string, DiscoveryConfig]> {
  for (const [i, s] of (config.outbound?.services ?? []).entries()) {
    const at = `outbound.services[${i}]`;
    if (s.discovery !== undefined) yield [`${at}.discovery`, s.discovery];
    for (const [j, b] of (s.backends ?? []).entries())
      yield [`${at}.backends[${j}].discovery`, b.discovery];
    for (const [k, r] of s.routes.entries())
      for (const [j, b] of (r.backends ?? []).entries())
        yield [`${at}.routes[${k}].backends[${j}].discovery`, b.discovery];
  }
}
