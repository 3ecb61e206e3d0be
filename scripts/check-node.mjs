// Fails early and clearly when scripts run on a Node older than the project supports.
// The root devDependency `node` puts Node 24 first on PATH for every npm script.
const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  console.error(
    `@mesh needs Node >= 22 (found ${process.version} at ${process.execPath}). ` +
      "Run scripts through npm (npm test, npm run …) so the node@24 devDependency is used.",
  );
  process.exit(1);
}
