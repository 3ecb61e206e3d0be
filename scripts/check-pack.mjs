// Checks that every publishable package's tarball holds its built code, types, README and
// LICENSE, and nothing else (no sources, tests or configs leak into npm).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const allowed = (path) =>
  path === "package.json" || path === "README.md" || path === "LICENSE" || path.startsWith("dist/");

const problems = [];
for (const dir of readdirSync("packages")) {
  const pkgDir = join("packages", dir);
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  if (pkg.private) continue;
  const [report] = JSON.parse(
    execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: pkgDir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }),
  );
  const files = report.files.map((f) => f.path);
  for (const f of files)
    if (!allowed(f)) problems.push(`${pkg.name}: unexpected file in tarball: ${f}`);
  for (const need of ["README.md", "LICENSE", "dist/index.js", "dist/index.d.ts"]) {
    if (!files.includes(need)) problems.push(`${pkg.name}: tarball is missing ${need}`);
  }
  // `mesh-proxy dashboard` serves these files from dist/ at run time.
  const extra =
    pkg.name === "@mesh/proxy" ? ["dist/dashboard/index.html", "dist/dashboard/app.js"] : [];
  for (const need of extra) {
    if (!files.includes(need)) problems.push(`${pkg.name}: tarball is missing ${need}`);
  }
  for (const bin of Object.values(pkg.bin ?? {})) {
    const path = bin.replace(/^\.\//, "");
    if (!files.includes(path)) problems.push(`${pkg.name}: tarball is missing bin ${path}`);
  }
}
if (problems.length > 0) {
  console.error(`npm pack contents check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log("npm pack contents: ok");
