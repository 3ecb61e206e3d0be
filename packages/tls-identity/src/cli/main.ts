import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CertificateAuthority } from "../ca/authority.js";
import { createTrustAnchor } from "../ca/trust-anchor.js";
import { tokenFileAuthenticator } from "../issuer/authenticator.js";
import { createIssuer } from "../issuer/service.js";
import { tokenReviewAuthenticator } from "../issuer/token-review.js";
import { exportPrivateKeyPem, keyTypeOf } from "../keys/keys.js";
import { parseCertificatesPem, spiffeIdOf, uriSansOf } from "../x509/certificate.js";

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const HELP: Record<string, string> = {
  main: `Usage: mesh-identity <command> [options]

Commands:
  ca create   create a trust anchor (root) and an issuing intermediate in a folder
  issue       issue an SVID (key + chain + bundle PEMs) from a CA folder
  inspect     show the SPIFFE ID, issuer, validity and key type of PEM certificates
  serve       run the issuer service (POST a CSR with a bearer token, get a chain)

Run "mesh-identity <command> --help" for a command's options.
`,
  "ca create": `Usage: mesh-identity ca create --trust-domain <td> --out <dir> [options]

Writes root.pem, root.key.pem, ca.pem (intermediate), ca.key.pem and bundle.pem.
Private keys are written with mode 0600.

Options:
  --trust-domain <td>   trust domain, e.g. example.org (required)
  --out <dir>           output folder (required; created if missing)
  --root-ttl <hours>    root lifetime in hours (default 8760 = 1 year)
  --ca-ttl <hours>      intermediate lifetime in hours (default 720 = 30 days)
`,
  issue: `Usage: mesh-identity issue --id <spiffe-id> --ca <dir> --out <dir> [options]

Generates a P-256 key and signs an SVID for it with the CA in <dir> (from "ca create").
Writes svid.pem (leaf + intermediate), svid.key.pem (mode 0600) and bundle.pem.

Options:
  --id <spiffe-id>      the SPIFFE ID, e.g. spiffe://example.org/ns/web/sa/api (required)
  --ca <dir>            CA folder (required)
  --out <dir>           output folder (required)
  --ttl <hours>         lifetime in hours (default 24)
`,
  inspect: `Usage: mesh-identity inspect <file.pem> [--json]

Prints, for each certificate in the file: SPIFFE ID (URI SAN), subject, issuer,
validity, key type, serial number and whether it is a CA.
`,
  serve: `Usage: mesh-identity serve --ca <dir> (--tokens <file> | --kubernetes) [options]

Runs the issuer: POST /v1/svid with "authorization: Bearer <token>" and a CSR (PEM, or
DER with content-type application/pkcs10); GET /v1/bundle for the trust anchors.

Options:
  --ca <dir>            CA folder from "ca create" (required)
  --tokens <file>       JSON file {"<token>": "spiffe://..."} (re-read on change)
  --kubernetes          authenticate projected ServiceAccount tokens with a TokenReview
                        (system:serviceaccount:NS:SA → spiffe://<td>/ns/NS/sa/SA); checks at
                        start that it may create tokenreviews. In-cluster by default
  --audience <aud>      token audience with --kubernetes (default mesh-identity)
  --kube-api <url>      API server with --kubernetes (default in-cluster)
  --kube-ca <file>      its CA (default the service account's ca.crt)
  --kube-token-file <f> the issuer's own token (default the service account's token)
  --port <n>            port (default 8081)
  --host <addr>         address (default 127.0.0.1)
  --tls-cert <file>     serve HTTPS with this certificate chain
  --tls-key <file>      ... and this key
  --ttl <hours>         SVID lifetime in hours (default 24)
`,
};

class UsageError extends Error {}

function hoursToMs(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(
      `${flag}: expected a positive number of hours, got ${JSON.stringify(value)}`,
    );
  return n * 3600_000;
}

function need(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new UsageError(`${flag} is required`);
  return value;
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

function loadCa(dir: string, extra: { svidTtlMs?: number } = {}): CertificateAuthority {
  const trustDomain = JSON.parse(readFileSync(join(dir, "ca.json"), "utf8")).trustDomain as string;
  return CertificateAuthority.fromPem({
    trustDomain,
    chainPem: readFileSync(join(dir, "ca.pem")),
    keyPem: readFileSync(join(dir, "ca.key.pem")),
    bundlePem: readFileSync(join(dir, "bundle.pem")),
    ...extra,
  });
}

/**
 * Runs the `mesh-identity` CLI with `argv` (without node and script). Resolves with the
 * exit code; for `serve`, resolves once listening and returns a `close` function.
 */
export async function runCli(
  argv: string[],
  io: CliIo,
): Promise<{ code: number; close?: () => Promise<void> }> {
  const [a, b] = argv;
  const command = a === "ca" && b === "create" ? "ca create" : a;
  const rest = command === "ca create" ? argv.slice(2) : argv.slice(1);
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    io.out(HELP.main as string);
    return { code: command === undefined ? 2 : 0 };
  }
  const help = HELP[command];
  if (help === undefined) {
    io.err(
      `mesh-identity: unknown command ${JSON.stringify(argv.slice(0, 2).join(" "))}\n\n${HELP.main}`,
    );
    return { code: 2 };
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: command === "inspect",
      options: {
        help: { type: "boolean", short: "h" },
        json: { type: "boolean" },
        "trust-domain": { type: "string" },
        out: { type: "string" },
        "root-ttl": { type: "string" },
        "ca-ttl": { type: "string" },
        id: { type: "string" },
        ca: { type: "string" },
        ttl: { type: "string" },
        tokens: { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        kubernetes: { type: "boolean" },
        audience: { type: "string", multiple: true },
        "kube-api": { type: "string" },
        "kube-ca": { type: "string" },
        "kube-token-file": { type: "string" },
      },
    });
    if (values.help) {
      io.out(help);
      return { code: 0 };
    }
    switch (command) {
      case "ca create": {
        const out = need(values.out, "--out");
        const anchor = createTrustAnchor({
          trustDomain: need(values["trust-domain"], "--trust-domain"),
          ttlMs: hoursToMs(values["root-ttl"], "--root-ttl", 8760 * 3600_000),
        });
        const ca = anchor.createAuthority({
          ttlMs: hoursToMs(values["ca-ttl"], "--ca-ttl", 720 * 3600_000),
        });
        mkdirSync(out, { recursive: true });
        const root = anchor.toPem();
        const inter = ca.toPem();
        writeFileSync(join(out, "root.pem"), root.certificatePem);
        writeSecret(join(out, "root.key.pem"), root.keyPem);
        writeFileSync(join(out, "ca.pem"), inter.chainPem);
        writeSecret(join(out, "ca.key.pem"), inter.keyPem);
        writeFileSync(join(out, "bundle.pem"), inter.bundlePem);
        writeFileSync(
          join(out, "ca.json"),
          `${JSON.stringify({ trustDomain: anchor.trustDomain }, null, 2)}\n`,
        );
        io.out(`created trust anchor and intermediate for ${anchor.trustDomain} in ${out}\n`);
        return { code: 0 };
      }
      case "issue": {
        const id = need(values.id, "--id");
        const out = need(values.out, "--out");
        const ca = loadCa(need(values.ca, "--ca"));
        const svid = ca.issue(id, { ttlMs: hoursToMs(values.ttl, "--ttl", 24 * 3600_000) });
        mkdirSync(out, { recursive: true });
        writeFileSync(join(out, "svid.pem"), svid.chainPem);
        writeSecret(join(out, "svid.key.pem"), exportPrivateKeyPem(svid.privateKey));
        writeFileSync(join(out, "bundle.pem"), ca.bundle.pem);
        io.out(
          `issued ${svid.spiffeId} valid until ${new Date(svid.notAfter).toISOString()} in ${out}\n`,
        );
        return { code: 0 };
      }
      case "inspect": {
        const file = positionals[0];
        if (!file) throw new UsageError("inspect needs a PEM file");
        const certs = parseCertificatesPem(readFileSync(file), file);
        const rows = certs.map((c) => {
          const uris = uriSansOf(c);
          let spiffeId: string | null = null;
          try {
            spiffeId = spiffeIdOf(c).toString();
          } catch {
            spiffeId = null;
          }
          return {
            spiffeId,
            uris,
            subject: c.subject.replaceAll("\n", ", "),
            issuer: c.issuer.replaceAll("\n", ", "),
            notBefore: new Date(c.validFrom).toISOString(),
            notAfter: new Date(c.validTo).toISOString(),
            keyType: keyTypeOf(c.publicKey) ?? c.publicKey.asymmetricKeyType,
            serialNumber: c.serialNumber,
            ca: c.ca,
          };
        });
        if (values.json) io.out(`${JSON.stringify(rows, null, 2)}\n`);
        else
          for (const [i, r] of rows.entries())
            io.out(
              `${i > 0 ? "\n" : ""}certificate ${i + 1}${r.ca ? " (CA)" : ""}\n  SPIFFE ID:  ${r.spiffeId ?? "(none)"}\n  subject:    ${r.subject}\n  issuer:     ${r.issuer}\n  not before: ${r.notBefore}\n  not after:  ${r.notAfter}\n  key type:   ${r.keyType}\n  serial:     ${r.serialNumber}\n`,
            );
        return { code: 0 };
      }
      case "serve": {
        const ca = loadCa(need(values.ca, "--ca"), {
          svidTtlMs: hoursToMs(values.ttl, "--ttl", 24 * 3600_000),
        });
        const port = values.port === undefined ? 8081 : Number(values.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new UsageError(
            `--port: expected an integer in 0..65535, got ${JSON.stringify(values.port)}`,
          );
        const tlsCert = values["tls-cert"];
        const tlsKey = values["tls-key"];
        if ((tlsCert === undefined) !== (tlsKey === undefined))
          throw new UsageError("--tls-cert and --tls-key go together");
        if (values.kubernetes === (values.tokens !== undefined))
          throw new UsageError("expected exactly one of --tokens <file> and --kubernetes");
        const authenticator = values.kubernetes
          ? await tokenReviewAuthenticator({
              trustDomain: ca.trustDomain,
              ...(values.audience ? { audiences: values.audience } : {}),
              api: {
                ...(values["kube-api"] ? { server: values["kube-api"] } : {}),
                ...(values["kube-ca"] ? { ca: readFileSync(values["kube-ca"]) } : {}),
                ...(values["kube-token-file"] ? { tokenFile: values["kube-token-file"] } : {}),
              },
            })
          : tokenFileAuthenticator(need(values.tokens, "--tokens"));
        const issuer = createIssuer({
          ca,
          authenticator,
          ...(tlsCert && tlsKey
            ? { tls: { cert: readFileSync(tlsCert), key: readFileSync(tlsKey) } }
            : {}),
        });
        const url = await issuer.listen(port, values.host ?? "127.0.0.1");
        io.out(`mesh-identity issuer for ${ca.trustDomain} listening on ${url}\n`);
        return { code: 0, close: () => issuer.close() };
      }
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      io.err(`mesh-identity ${command}: ${(err as Error).message}\n\n${help}`);
      return { code: 2 };
    }
    io.err(`mesh-identity ${command}: ${(err as Error).message}\n`);
    return { code: 1 };
  }
  return { code: 0 };
}
