#!/usr/bin/env node
// Bundles the mesh-proxy CLI into one self-contained ESM file for the container image:
// every npm dependency (the @mesh/* workspace packages, pino, yaml, zod, undici, ...) is
// inlined, only `node:` built-ins stay external. Output (dist/ is git-ignored):
//
//   dist/bundle/mesh-proxy.mjs            the proxy (`node mesh-proxy.mjs --config <file>`)
//   dist/bundle/mesh-identity.mjs         @mesh/tls-identity's CLI (the issuer `install` deploys)
//   dist/bundle/healthcheck.mjs           the image's HEALTHCHECK probe (no dependencies)
//   dist/bundle/THIRD_PARTY_LICENSES.txt  name, version and license of every inlined package
//
// Usage: node image/bundle.mjs [--outdir <dir>]
// The @mesh/* libraries are resolved through their package exports, so build them first
// (`npx turbo run build` from the repo root); the proxy itself is bundled from src/.
import { execFileSync } from "node:child_process";
import { chmod, copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = resolve(here, "..");

const { values } = parseArgs({
  options: { outdir: { type: "string", default: join(packageDir, "dist", "bundle") } },
});
const outdir = resolve(values.outdir);

// esbuild is installed at the repo root as tsup's dependency.
const require = createRequire(join(packageDir, "package.json"));
const esbuild = require("esbuild");
const pkg = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8"));

/**
 * The CLI reads its version with `createRequire(import.meta.url)("../package.json")`, which
 * only works next to the package. Inline it so `--version` works from the single file.
 */
const inlinePackageJson = {
  name: "inline-package-json",
  setup(build) {
    const srcDir = join(packageDir, "src") + sep;
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(srcDir)) return undefined;
      const source = await readFile(args.path, "utf8");
      const inlined = source.replace(
        /require\((["'])(?:\.\.\/)+package\.json\1\)/g,
        JSON.stringify({ name: pkg.name, version: pkg.version }),
      );
      return { contents: inlined, loader: "ts" };
    });
  },
};

/** Left out of the single-file bundle on purpose (see the esbuild options). */
const DELIBERATELY_EXTERNAL = ["@kubernetes/client-node"];

const outfile = join(outdir, "mesh-proxy.mjs");
const identityOutfile = join(outdir, "mesh-identity.mjs");
const outputs = [
  outfile,
  identityOutfile,
  join(outdir, "healthcheck.mjs"),
  join(outdir, "THIRD_PARTY_LICENSES.txt"),
];
await mkdir(outdir, { recursive: true });
// Only our own files: --outdir may name a directory that holds other things.
for (const file of outputs) await rm(file, { force: true });

/** One self-contained CLI file from `entry`. */
const bundleCli = (entry, file) =>
  esbuild.build({
    absWorkingDir: packageDir,
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    // Prefer the ESM builds of dual packages; CJS-only ones (pino, undici) are wrapped.
    mainFields: ["module", "main"],
    conditions: ["node", "import"],
    // Readable stack traces (names and lines) matter more than a few hundred kB.
    minifySyntax: true,
    legalComments: "none",
    metafile: true,
    logLevel: "warning",
    plugins: [inlinePackageJson],
    // Kubeconfig support (discovery.kubernetes outside a cluster) would add ~16 MB; in a pod
    // the proxy uses the in-cluster config, which needs nothing from it. Without it a
    // kubeconfig is refused with an error saying to install @kubernetes/client-node.
    external: [...DELIBERATELY_EXTERNAL],
    // CommonJS dependencies bundled into an ES module still call require() for built-ins
    // and may read __filename/__dirname; give them the real ones.
    banner: {
      js: [
        'import { createRequire as __meshCreateRequire } from "node:module";',
        'import { fileURLToPath as __meshFileURLToPath } from "node:url";',
        'import { dirname as __meshDirname } from "node:path";',
        "const require = __meshCreateRequire(import.meta.url);",
        "const __filename = __meshFileURLToPath(import.meta.url);",
        "const __dirname = __meshDirname(__filename);",
      ].join("\n"),
    },
  });
const result = await bundleCli(join(packageDir, "src", "cli.ts"), outfile);
// The issuer's CLI ships in the same image, so `mesh-proxy install` needs one image. Built
// from @mesh/tls-identity's dist (build the workspace first, as for the libraries above).
const identityDir = dirname(require.resolve("@mesh/tls-identity/package.json"));
const identityResult = await bundleCli(join(identityDir, "dist", "cli.js"), identityOutfile);
for (const [k, v] of Object.entries(identityResult.metafile.inputs))
  result.metafile.inputs[k] ??= v;
for (const [k, v] of Object.entries(identityResult.metafile.outputs))
  result.metafile.outputs[k] = v;

// Fail the build if anything other than a Node built-in was left external.
const externals = new Set();
for (const output of Object.values(result.metafile.outputs)) {
  for (const imp of output.imports) if (imp.external) externals.add(imp.path);
}
const nonBuiltin = [...externals].filter(
  (name) =>
    !name.startsWith("node:") &&
    !require("node:module").isBuiltin(name) &&
    !DELIBERATELY_EXTERNAL.includes(name),
);
if (nonBuiltin.length > 0) {
  throw new Error(`bundle: left external, expected none: ${nonBuiltin.join(", ")}`);
}

// esbuild keeps the entry's #! line; make sure there is one even if the entry drops it.
for (const file of [outfile, identityOutfile]) {
  const code = await readFile(file, "utf8");
  if (!code.startsWith("#!")) await writeFile(file, `#!/usr/bin/env node\n${code}`);
  await chmod(file, 0o755);
}

await copyFile(join(here, "healthcheck.mjs"), join(outdir, "healthcheck.mjs"));
await writeFile(join(outdir, "THIRD_PARTY_LICENSES.txt"), await licenses(result.metafile));

// Smoke test: the file must run with no node_modules anywhere near it.
const versionOut = execFileSync(process.execPath, [outfile, "--version"], {
  cwd: outdir,
  encoding: "utf8",
}).trim();
if (versionOut !== pkg.version) {
  throw new Error(`bundle: --version: expected ${pkg.version}, got ${JSON.stringify(versionOut)}`);
}
const identityHelp = execFileSync(process.execPath, [identityOutfile, "--help"], {
  cwd: outdir,
  encoding: "utf8",
});
if (!identityHelp.includes("serve")) {
  throw new Error(
    `bundle: mesh-identity --help: expected its usage, got ${JSON.stringify(identityHelp)}`,
  );
}

const { size } = await stat(outfile);
process.stdout.write(
  `bundle: ${relative(process.cwd(), outfile) || outfile} ${(size / 1024).toFixed(0)} KiB ` +
    `(${Object.keys(result.metafile.inputs).length} modules)\n`,
);

/** Name, version, license and license text of every npm package inlined into the bundle. */
async function licenses(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const dir = packageRoot(resolve(packageDir, input));
    if (dir === undefined || dir === packageDir || packages.has(dir)) continue;
    const meta = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    const id = `${meta.name}@${meta.version}`;
    const licenseFile = (await readdir(dir)).find((f) => /^(?:licen[cs]e|copying)/i.test(f));
    const text = licenseFile ? (await readFile(join(dir, licenseFile), "utf8")).trim() : "";
    packages.set(dir, { id, license: meta.license ?? "UNKNOWN", text });
  }
  const list = [...packages.values()].sort((a, b) => a.id.localeCompare(b.id));
  const rule = "-".repeat(78);
  return [
    `Packages inlined into mesh-proxy.mjs and mesh-identity.mjs (${pkg.name}@${pkg.version}):`,
    ...list.map((p) => `  ${p.id}: ${p.license}`),
    "",
    ...list.flatMap((p) => [rule, `${p.id} (${p.license})`, "", p.text || "(no license file)", ""]),
  ].join("\n");
}

/** The directory of the package.json that owns `file` (node_modules package or workspace). */
function packageRoot(file) {
  const marker = `${sep}node_modules${sep}`;
  const at = file.lastIndexOf(marker);
  if (at !== -1) {
    const rest = file.slice(at + marker.length).split(sep);
    const depth = rest[0]?.startsWith("@") ? 2 : 1;
    return file.slice(0, at + marker.length) + rest.slice(0, depth).join(sep);
  }
  // Workspace packages resolve through symlinks to packages/<name>/.
  const parts = file.split(sep);
  const i = parts.lastIndexOf("packages");
  return i === -1 || i + 1 >= parts.length ? undefined : parts.slice(0, i + 2).join(sep);
}
