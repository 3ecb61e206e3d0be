// The real programs some tests drive as peers (openssl, promtool, redis, buildah, …): one
// table, found once per process, and one way to install them. Kept to plain JavaScript that
// the PATH Node runs too, because `npm run peers` may run before `npm install`.
//
//   node scripts/peers.mjs            which peers are present, and how to install the rest
//   node scripts/peers.mjs install    install the missing ones (apt-get on Debian/Ubuntu)
//
// In tests: `describe.skipIf(missingPeer("promtool"))(…)`. A missing peer skips the test and
// is recorded for the summary `npm test` prints at the end; under CI=true it throws instead,
// so CI cannot pass without every peer.
import { spawnSync } from "node:child_process";
import { accessSync, appendFileSync, constants, mkdirSync, readFileSync, rmSync } from "node:fs";
import { delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Where gated tests record a missing peer; `npm test` (scripts/test.mjs) reads and clears it. */
export const SKIP_LOG = join(ROOT, "node_modules", ".cache", "mesh-peers", "skipped.jsonl");

/**
 * Every peer: the programs that must all be on PATH, the Debian/Ubuntu package that brings
 * them, the Homebrew formula where there is one, and what the tests use it for.
 */
export const PEERS = {
  openssl: {
    bins: ["openssl"],
    apt: "openssl",
    brew: "openssl",
    use: "verifies issued certificates and CSRs; probes the inbound TLS listener",
  },
  promtool: {
    bins: ["promtool"],
    apt: "prometheus",
    brew: "prometheus",
    use: "checks the Prometheus text exposition",
  },
  prometheus: {
    bins: ["prometheus"],
    apt: "prometheus",
    brew: "prometheus",
    use: "a real Prometheus server scrapes a test target",
  },
  redis: {
    bins: ["redis-server", "redis-cli", "redis-benchmark"],
    apt: "redis-server",
    brew: "redis",
    use: "a real opaque-TCP peer behind two proxies",
  },
  buildah: {
    bins: ["buildah"],
    apt: "buildah",
    brew: undefined, // Linux only
    use: "builds and runs the proxy's OCI image without a daemon",
  },
  kubectl: {
    bins: ["kubectl"],
    apt: "kubectl",
    brew: "kubectl",
    use: "gets and watches EndpointSlices from the fake Kubernetes API server (proves it speaks the protocol)",
  },
  nginx: { bins: ["nginx"], apt: "nginx", brew: "nginx", use: "a C proxy peer in bench/" },
  haproxy: { bins: ["haproxy"], apt: "haproxy", brew: "haproxy", use: "a C proxy peer in bench/" },
  wrk: { bins: ["wrk"], apt: "wrk", brew: "wrk", use: "the closed-loop load generator of bench/" },
  chromium: {
    bins: ["chromium"],
    apt: "chromium",
    brew: undefined, // the tests look for a `chromium` binary, which Debian/Ubuntu install
    use: "a headless browser drives the mesh-proxy dashboard page against the demo mesh",
  },
};

// Debian puts nginx and haproxy in /usr/sbin, which is not on a normal user's PATH.
const SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin"];
const found = new Map();

/** The absolute path of executable `bin` on PATH (or an sbin directory), or undefined. */
export function which(bin) {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), ...SBIN];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return join(dir, bin);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The programs of peer `name` that are not installed (empty when it is complete). Cached. */
export function absentBins(name) {
  const peer = PEERS[name];
  if (!peer)
    throw new TypeError(
      `peer: expected one of ${Object.keys(PEERS).join(", ")}, got ${JSON.stringify(name)}`,
    );
  if (!found.has(name))
    found.set(
      name,
      peer.bins.filter((bin) => which(bin) === undefined),
    );
  return found.get(name);
}

/** True when CI=true (or any CI value but "false"/"0"): missing peers are failures there. */
export function inCi() {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "false" && ci !== "0";
}

/** The one-line instruction that installs peer `name` here. */
export function installHint(name) {
  const { apt, brew } = PEERS[name];
  const others = brew ? `; macOS: brew install ${brew}` : "; Linux only";
  return `npm run peers (Debian/Ubuntu: apt-get install -y ${apt}${others})`;
}

/**
 * For `describe.skipIf` / `it.skipIf`: true when peer `name` is missing, after recording it
 * for the end-of-run summary. Under CI=true a missing peer throws, failing the test file.
 */
export function missingPeer(name) {
  const absent = absentBins(name);
  if (absent.length === 0) return false;
  if (inCi()) {
    throw new Error(
      `${absent.join(", ")}: not found on PATH, and CI=true requires every test peer. ` +
        `Install it: ${installHint(name)}.`,
    );
  }
  mkdirSync(dirname(SKIP_LOG), { recursive: true });
  appendFileSync(SKIP_LOG, `${JSON.stringify({ peer: name, file: callerFile() })}\n`);
  return true;
}

/** The repository-relative file that called missingPeer(), from the stack (for the summary). */
function callerFile() {
  const frame = new Error().stack?.split("\n")[3] ?? "";
  const match = /(?:file:\/\/)?(\/[^\s():?]+):\d+:\d+/.exec(frame);
  return match ? relative(ROOT, match[1]) : process.cwd();
}

/** Clears the skip log (at the start of `npm test`). */
export function clearSkipLog() {
  rmSync(SKIP_LOG, { force: true });
}

/**
 * The end-of-run summary: one line per missing peer with what it skipped and how to
 * install it, or one line saying every peer was there.
 */
export function skipSummary() {
  let lines = [];
  try {
    lines = readFileSync(SKIP_LOG, "utf8").split("\n").filter(Boolean);
  } catch {
    // nothing was skipped
  }
  const byPeer = new Map();
  for (const line of lines) {
    const { peer, file } = JSON.parse(line);
    byPeer.set(peer, (byPeer.get(peer) ?? new Set()).add(file));
  }
  if (byPeer.size === 0) return ["test peers: none missing, nothing skipped"];
  const width = Math.max(...[...byPeer.keys()].map((p) => p.length));
  return [
    `test peers: ${byPeer.size} missing, the tests that need them were SKIPPED (with CI=true they fail instead):`,
    ...[...byPeer].map(([peer, files]) => {
      const dirs = [...new Set([...files].map((f) => f.split("/test/")[0]))].join(", ");
      const n = `${files.size} test file${files.size === 1 ? "" : "s"}`;
      return `  ${peer.padEnd(width)}  not installed; ${n} skipped what needs it (${dirs}) — install: ${installHint(peer)}`;
    }),
  ];
}

function osRelease() {
  try {
    return readFileSync("/etc/os-release", "utf8");
  } catch {
    return "";
  }
}

/** Installs every missing peer: apt-get on Debian/Ubuntu, instructions elsewhere. Exit code. */
function install() {
  const missing = Object.keys(PEERS).filter((name) => absentBins(name).length > 0);
  if (missing.length === 0) {
    console.log(`test peers: all present (${Object.keys(PEERS).join(", ")})`);
    return 0;
  }
  const packages = [...new Set(missing.map((name) => PEERS[name].apt))];
  const debian = /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(osRelease()) && which("apt-get");
  if (!debian) {
    console.error(
      `test peers missing: ${missing.join(", ")}. This script installs them only on Debian/Ubuntu.`,
    );
    const brew = [...new Set(missing.map((name) => PEERS[name].brew).filter(Boolean))];
    if (process.platform === "darwin") console.error(`macOS: brew install ${brew.join(" ")}`);
    else console.error(`Install with your package manager (Debian names: ${packages.join(" ")}).`);
    if (missing.includes("buildah")) console.error("buildah runs on Linux only.");
    return 1;
  }
  const root = typeof process.getuid !== "function" || process.getuid() === 0;
  const sudo = root ? [] : which("sudo") ? ["sudo"] : undefined;
  const command = ["apt-get", "install", "-y", "--no-install-recommends", ...packages];
  if (!sudo) {
    console.error(
      `test peers missing: ${missing.join(", ")}. As root, run:\n  apt-get update && ${command.join(" ")}`,
    );
    return 1;
  }
  console.log(`installing Debian packages: ${packages.join(" ")}`);
  // `env` sets DEBIAN_FRONTEND past sudo's environment reset.
  for (const args of [["apt-get", "update", "-qq"], command]) {
    const argv = [...sudo, "env", "DEBIAN_FRONTEND=noninteractive", ...args];
    const r = spawnSync(argv[0], argv.slice(1), { stdio: "inherit" });
    if (r.status !== 0) {
      console.error(
        `${[...sudo, ...args].join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`,
      );
      return 1;
    }
  }
  found.clear();
  const still = Object.keys(PEERS).filter((name) => absentBins(name).length > 0);
  if (still.length > 0) {
    console.error(`still missing after apt-get: ${still.join(", ")}`);
    return 1;
  }
  console.log("test peers: all present");
  return 0;
}

function status() {
  let missing = 0;
  for (const [name, peer] of Object.entries(PEERS)) {
    const absent = absentBins(name);
    if (absent.length > 0) missing += 1;
    console.log(
      `${name.padEnd(10)} ${absent.length === 0 ? "present" : `MISSING (${absent.join(", ")}) — ${installHint(name)}`}  [${peer.use}]`,
    );
  }
  return missing === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const command = process.argv[2] ?? "status";
  if (command === "install") process.exitCode = install();
  else if (command === "status") process.exitCode = status();
  else {
    console.error(
      `usage: node scripts/peers.mjs [status|install] (got ${JSON.stringify(command)})`,
    );
    process.exitCode = 2;
  }
}
