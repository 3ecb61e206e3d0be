#!/usr/bin/env node
// Builds a FROM-scratch OCI base image holding the repo's own Node binary, for machines that
// cannot pull a public base. It has the layout of gcr.io/distroless/nodejs24-debian12:nonroot,
// so the proxy's Dockerfile builds on either unchanged:
//
//   /nodejs/bin/node                     the `node` devDependency's real binary (not its wrapper)
//   the shared libraries `ldd` lists     at the paths ldd prints, plus the dynamic loader
//   /etc/passwd, /etc/group              root and nonroot (65532)
//   /etc/nsswitch.conf                   hosts: files dns (glibc >= 2.34 has both built in)
//   /tmp (1777), /home/nonroot (65532)
//   ENTRYPOINT ["/nodejs/bin/node"], USER 65532:65532
//
// Usage: node image/build-local-base.mjs [--tag localhost/mesh-node-base:24]
//          [--root <dir> --runroot <dir>] [--storage-driver vfs] [--node <path>]
// Needs buildah (Debian: apt-get install buildah). No registry and no container engine are
// used; --root/--runroot keep the image in a private store (tests use a temp dir).
import { execFileSync } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, open, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..", "..");
const NONROOT = 65532;

const { values } = parseArgs({
  options: {
    tag: { type: "string" },
    root: { type: "string" },
    runroot: { type: "string" },
    "storage-driver": { type: "string", default: "vfs" },
    node: { type: "string" },
  },
});

const nodeBinary = await findNodeBinary(values.node);
const nodeVersion = run(nodeBinary, ["--version"]).trim();
const major = nodeVersion.replace(/^v/, "").split(".")[0];
const tag = values.tag ?? `localhost/mesh-node-base:${major}`;

const buildah = ["--storage-driver", values["storage-driver"]];
if (values.root) buildah.push("--root", resolve(values.root));
if (values.runroot) buildah.push("--runroot", resolve(values.runroot));

const rootfs = await mkdtemp(join(tmpdir(), "mesh-node-base-"));
let container;
try {
  await populate(join(rootfs, "fs"), join(rootfs, "home"));
  container = bh(["from", "--quiet", "scratch"]).trim();
  bh(["copy", "--quiet", container, `${join(rootfs, "fs")}/`, "/"]);
  bh([
    "copy",
    "--quiet",
    "--chown",
    `${NONROOT}:${NONROOT}`,
    container,
    `${join(rootfs, "home")}/`,
    "/home/",
  ]);
  bh([
    "config",
    "--user",
    `${NONROOT}:${NONROOT}`,
    "--workingdir",
    `/home/nonroot`,
    "--env",
    "PATH=/nodejs/bin:/usr/local/bin:/usr/bin:/bin",
    "--env",
    `HOME=/home/nonroot`,
    "--entrypoint",
    JSON.stringify(["/nodejs/bin/node"]),
    "--cmd",
    "",
    "--label",
    `org.opencontainers.image.title=mesh-node-base`,
    "--label",
    `org.opencontainers.image.description=Node ${nodeVersion} on scratch with its shared libraries`,
    "--label",
    `org.opencontainers.image.version=${nodeVersion}`,
    container,
  ]);
  const id = bh(["commit", "--quiet", "--rm", container, tag]).trim();
  container = undefined;
  process.stdout.write(`${tag} ${id.slice(0, 12)} (node ${nodeVersion} from ${nodeBinary})\n`);
} finally {
  if (container) bh(["rm", container]);
  await rm(rootfs, { recursive: true, force: true });
}

/** Lays out the base's filesystem under `dir`, and the user's home under `home`. */
async function populate(dir, home) {
  await mkdir(dir, { mode: 0o755 }); // it becomes the image's "/"
  await chmod(dir, 0o755);
  await place(nodeBinary, join(dir, "nodejs", "bin", "node"));
  for (const lib of sharedLibraries(nodeBinary)) await place(lib, join(dir, lib));

  await mkdir(join(dir, "etc"), { recursive: true });
  await writeFile(
    join(dir, "etc", "passwd"),
    `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${NONROOT}:${NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n`,
  );
  await writeFile(join(dir, "etc", "group"), `root:x:0:\nnonroot:x:${NONROOT}:\n`);
  await writeFile(join(dir, "etc", "nsswitch.conf"), "hosts: files dns\n");

  await mkdir(join(dir, "tmp"));
  await chmod(join(dir, "tmp"), 0o1777);
  await mkdir(join(dir, "home"));
  // /home/nonroot is copied on its own: `buildah copy` resets ownership unless --chown.
  await mkdir(join(home, "nonroot"), { recursive: true });
  await chmod(join(home, "nonroot"), 0o700);
}

/** Copies the file behind `from` (symlinks followed) to `to`, keeping its mode. */
async function place(from, to) {
  await mkdir(dirname(to), { recursive: true });
  await copyFile(await realpath(from), to);
}

/** The absolute paths `ldd` prints for `binary`: its libraries and the dynamic loader. */
function sharedLibraries(binary) {
  const libs = [];
  for (const line of run("ldd", [binary]).split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const match = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/);
    if (match?.[1]) libs.push(match[1]);
    else if (line.includes("not found")) throw new Error(`ldd ${binary}: ${line.trim()}`);
  }
  if (!libs.some((lib) => lib.includes("ld-linux"))) {
    throw new Error(`ldd ${binary}: expected a dynamic loader, got ${JSON.stringify(libs)}`);
  }
  return libs;
}

/**
 * The real ELF binary of the `node` devDependency. `node_modules/.bin/node` may be a wrapper
 * script (npm's `node` package installs the platform package `node-<os>-<arch>` underneath).
 */
async function findNodeBinary(explicit) {
  const candidates = explicit
    ? [resolve(explicit)]
    : [
        join(repoRoot, "node_modules", ".bin", "node"),
        join(repoRoot, "node_modules", "node", "bin", "node"),
        join(
          repoRoot,
          "node_modules",
          "node",
          "node_modules",
          `node-${process.platform}-${process.arch}`,
          "bin",
          "node",
        ),
        join(repoRoot, "node_modules", `node-${process.platform}-${process.arch}`, "bin", "node"),
      ];
  for (const candidate of candidates) {
    try {
      const file = await realpath(candidate);
      if (await isElf(file)) return file;
    } catch {
      // not there: try the next layout
    }
  }
  throw new Error(
    `node binary: expected an ELF executable at one of ${candidates.join(", ")}, got none ` +
      "(run npm ci at the repo root, or pass --node <path>)",
  );
}

async function isElf(file) {
  const handle = await open(file, "r");
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    return bytesRead === 4 && buffer.toString("latin1") === "\x7fELF";
  } finally {
    await handle.close();
  }
}

function bh(args) {
  return run("buildah", [...buildah, ...args]);
}

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    if (err.code === "ENOENT") {
      throw new Error(`${cmd}: not found${cmd === "buildah" ? " (apt-get install buildah)" : ""}`);
    }
    throw new Error(`${cmd} ${args.join(" ")}: exit ${err.status}\n${err.stderr ?? ""}`);
  }
}
