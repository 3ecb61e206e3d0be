// `npm test`: build, type-check, lint, check the tarballs, run every package's tests, then the
// repository's own tests (README commands, packages installed the way users get them), and
// end with one line per missing test peer and the command that installs it.
//
// Every step runs even when an earlier test step failed, so one run shows every failure and
// the peer summary is always printed; the exit code is the first failure's.
import { spawnSync } from "node:child_process";
import { clearSkipLog, inCi, skipSummary } from "./peers.mjs";

await import("./check-node.mjs");

/** Steps that must pass before tests make sense (a broken build fails fast). */
const prepare = [
  ["turbo", "run", "build", "typecheck"],
  // The bins linked at the root point into dist/, so npm skips them until a build exists.
  ["npm", "run", "link-bins", "--silent"],
  ["tsc", "-p", "test"],
  ["biome", "check", "."],
  ["node", "scripts/check-pack.mjs"],
];
/** The test steps; all run. Package tests one at a time: several spawn many processes. */
const tests = [
  ["turbo", "run", "test", "--concurrency=1", "--continue"],
  ["vitest", "run", "--root", "test"],
];

function run(argv) {
  console.log(`\n> ${argv.join(" ")}`);
  const r = spawnSync(argv[0], argv.slice(1), { stdio: "inherit" });
  if (r.error) console.error(`${argv[0]}: ${r.error.message}`);
  return r.status ?? 1;
}

let failed = 0;
for (const argv of prepare) {
  const code = run(argv);
  if (code !== 0) process.exit(code);
}
clearSkipLog();
for (const argv of tests) {
  const code = run(argv);
  if (code !== 0 && failed === 0) failed = code;
}

console.log(`\n${skipSummary().join("\n")}`);
if (inCi()) console.log("(CI=true: a missing peer fails the tests that need it)");
console.log(failed === 0 ? "npm test: passed" : "npm test: FAILED (see above)");
process.exitCode = failed;
