/**
 * External tools the harness drives (nginx, HAProxy, wrk): found on PATH, or installed
 * with apt-get when allowed, idempotently. Whatever happens is recorded, never silent.
 */
import { execFileSync, spawnSync } from "node:child_process";

/** The state of one external tool, as written into every result file. */
export interface ToolStatus {
  name: string;
  available: boolean;
  path?: string;
  version?: string;
  /** True when this run installed it. */
  installed?: boolean;
  /** Why it is unavailable. */
  reason?: string;
}

const APT_PACKAGE: Record<string, string> = { nginx: "nginx", haproxy: "haproxy", wrk: "wrk" };
const SEARCH_PATH = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin"];
const cache = new Map<string, ToolStatus>();
let aptUpdated = false;

function which(name: string): string | undefined {
  const paths = [...(process.env.PATH ?? "").split(":"), ...SEARCH_PATH];
  for (const dir of paths) {
    if (!dir) continue;
    const r = spawnSync("test", ["-x", `${dir}/${name}`]);
    if (r.status === 0) return `${dir}/${name}`;
  }
  return undefined;
}

function versionOf(name: string, path: string): string | undefined {
  const args = name === "nginx" ? ["-v"] : name === "haproxy" ? ["-v"] : ["--version"];
  const r = spawnSync(path, args, { encoding: "utf8", timeout: 5000 });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0];
  return text || undefined;
}

/**
 * Finds `name`, installing its Debian package when missing and `install` is true (needs
 * root and apt-get; bounded to 5 minutes). Results are cached per run.
 */
export function ensureTool(name: string, install: boolean): ToolStatus {
  const cached = cache.get(name);
  if (cached) return cached;
  let path = which(name);
  let installed = false;
  let reason: string | undefined;
  if (!path && install) {
    const pkg = APT_PACKAGE[name] ?? name;
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
      reason = `not installed and not root (install with: apt-get install -y ${pkg})`;
    } else if (!which("apt-get")) {
      reason = "not installed and apt-get is not available";
    } else {
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      if (!aptUpdated) {
        spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", timeout: 300_000, env });
        aptUpdated = true;
      }
      const r = spawnSync("apt-get", ["install", "-y", "-qq", pkg], {
        encoding: "utf8",
        timeout: 300_000,
        env,
      });
      path = which(name);
      installed = path !== undefined;
      if (!path)
        reason = `apt-get install ${pkg} failed: ${(r.stderr || r.stdout || "").trim().slice(-300)}`;
    }
  } else if (!path) {
    reason = "not installed (the harness installs it with apt-get unless --no-install is given)";
  }
  const status: ToolStatus = path
    ? { name, available: true, path, version: versionOf(name, path), installed }
    : { name, available: false, reason };
  cache.set(name, status);
  return status;
}

/** Machine facts for the report header. */
export interface MachineInfo {
  hostname: string;
  cpus: number;
  cpuModel: string;
  memGb: number;
  kernel: string;
  node: string;
  loadAvgAtStart: [number, number, number];
}

/** Collects {@link MachineInfo} now. */
export async function machineInfo(): Promise<MachineInfo> {
  const os = await import("node:os");
  const load = os.loadavg();
  let kernel = os.release();
  try {
    kernel = execFileSync("uname", ["-sr"], { encoding: "utf8" }).trim();
  } catch {
    // keep os.release()
  }
  return {
    hostname: os.hostname(),
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel,
    node: process.version,
    loadAvgAtStart: [round2(load[0]!), round2(load[1]!), round2(load[2]!)],
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
