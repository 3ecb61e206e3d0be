// `npm test`: build, type-check, lint, check the tarballs, run every package's tests, then the
// repository's own tests (README commands, packages installed the way users get them), and
// end with one line per missing test peer and the command that installs it.
//
// Every step runs even when an earlier test step failed, so one run shows every failure and
// the peer summary is always printed; the exit code is the first failure's.
//
// Each step has a time limit (a hung test must fail the run, not eat CI's whole budget): on
// expiry its whole process group is killed and the step fails naming the limit.
import { spawn } from "node:child_process";
import { clearSkipLog, inCi, skipSummary } from "./peers.mjs";

await import("./check-node.mjs");

const MINUTE = 60_000;
/** Steps that must pass before tests make sense (a broken build fails fast). */
const prepare = [
  [["turbo", "run", "build", "typecheck"], 15 * MINUTE],
  // The bins linked at the root point into dist/, so npm skips them until a build exists.
  [["npm", "run", "link-bins", "--silent"], 2 * MINUTE],
  [["tsc", "-p", "test"], 5 * MINUTE],
  [["biome", "check", "."], 5 * MINUTE],
  [["node", "scripts/check-pack.mjs"], 5 * MINUTE],
];
/**
 * The test steps; all run. Package tests one at a time: several spawn many processes.
 * Limits: about 5x what a 2-core CI machine takes (5 min and 1.5 min).
 */
const tests = [
  [["turbo", "run", "test", "--concurrency=1", "--continue"], 25 * MINUTE],
  [["vitest", "run", "--root", "test"], 10 * MINUTE],
];

/** Runs one step in its own process group; resolves with its exit code (1 on a signal). */
function run([argv, limitMs]) {
  console.log(`\n> ${argv.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: "inherit", detached: true });
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      console.error(
        `\nnpm test: "${argv.join(" ")}" did not finish within ${limitMs / MINUTE} min; ` +
          "killing it (a test hangs: the last file it started is the suspect)",
      );
      killGroup("SIGKILL");
    }, limitMs);
    // Detached, the step no longer gets the terminal's Ctrl-C: pass it on, then stop.
    const forward = (signal) => {
      killGroup(signal);
      process.exit(130);
    };
    process.on("SIGINT", forward).on("SIGTERM", forward);
    child.on("error", (err) => console.error(`${argv[0]}: ${err.message}`));
    child.on("close", (code) => {
      clearTimeout(timer);
      process.off("SIGINT", forward).off("SIGTERM", forward);
      resolve(code ?? 1);
    });
  });
}

let failed = 0;
for (const step of prepare) {
  const code = await run(step);
  if (code !== 0) process.exit(code);
}
clearSkipLog();
for (const step of tests) {
  const code = await run(step);
  if (code !== 0 && failed === 0) failed = code;
}

console.log(`\n${skipSummary().join("\n")}`);
if (inCi()) console.log("(CI=true: a missing peer fails the tests that need it)");
console.log(failed === 0 ? "npm test: passed" : "npm test: FAILED (see above)");
process.exitCode = failed;
