import { describe, expect, it } from "vitest";
import { runCli } from "../helpers.js";
import { runMain } from "../kubernetes/run-main.js";

/**
 * Every subcommand's prologue behaves the same through the real `mesh-proxy` binary: help on
 * stdout with exit 0; usage errors as one line naming the flag plus a pointer to `--help` on
 * stderr, nothing on stdout, exit 2.
 */
interface Case {
  /** argv selecting the command. */
  readonly command: readonly string[];
  /** The prefix of its messages and help hint. */
  readonly prefix: string;
  /** How its help is reached (`check` needs `--kubernetes`). */
  readonly helpWith?: string;
  /** A text its help contains. */
  readonly helpSays: string;
  /** A misspelt flag and the flag meant. */
  readonly typo: readonly [string, string];
  /** A flag taking a value, and a boolean flag (or undefined). */
  readonly stringFlag: string;
  readonly booleanFlag?: string;
  /** Whether a positional argument is a usage error. */
  readonly noPositionals: boolean;
}

const cases: readonly Case[] = [
  {
    command: ["stat"],
    prefix: "mesh-proxy stat",
    helpSays: "mesh-proxy stat --admin",
    typo: ["--wach", "--watch"],
    stringFlag: "--interval",
    booleanFlag: "--json",
    noPositionals: true,
  },
  {
    command: ["tap"],
    prefix: "mesh-proxy tap",
    helpSays: "mesh-proxy tap --admin",
    typo: ["--stauts", "--status"],
    stringFlag: "--count",
    booleanFlag: "--json",
    noPositionals: true,
  },
  {
    command: ["dashboard"],
    prefix: "mesh-proxy dashboard",
    helpSays: "mesh-proxy dashboard --admin",
    typo: ["--admin-file", "--admins-file"],
    stringFlag: "--listen",
    noPositionals: true,
  },
  {
    command: ["inject"],
    prefix: "mesh-proxy inject",
    helpSays: "Usage: mesh-proxy inject",
    typo: ["--uninjct", "--uninject"],
    stringFlag: "--settings",
    booleanFlag: "--uninject",
    noPositionals: false,
  },
  {
    command: ["injector"],
    prefix: "mesh-proxy injector",
    helpSays: "Usage: mesh-proxy injector",
    typo: ["--tls-crt", "--tls-cert"],
    stringFlag: "--port",
    noPositionals: true,
  },
  {
    command: ["install"],
    prefix: "mesh-proxy install",
    helpSays: "Usage: mesh-proxy install",
    typo: ["--replica", "--replicas"],
    stringFlag: "--namespace",
    noPositionals: true,
  },
  {
    command: ["check", "--kubernetes"],
    prefix: "mesh-proxy check",
    helpWith: "mesh-proxy check --kubernetes",
    helpSays: "Usage: mesh-proxy check --kubernetes",
    typo: ["--warn-day", "--warn-days"],
    stringFlag: "--kubeconfig",
    booleanFlag: "--kubernetes",
    noPositionals: true,
  },
  {
    command: [],
    prefix: "mesh-proxy",
    helpSays: "mesh-proxy check --config <file>",
    typo: ["--confg", "--config"],
    stringFlag: "--config",
    booleanFlag: "--version",
    noPositionals: false,
  },
];

/** Runs `mesh-proxy <args>`: through the real binary, or in-process through `main()`. */
type Run = (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;

const inProcess: Run = async (args) => {
  const { code, out, err } = await runMain(args);
  return { code, stdout: out, stderr: err };
};

/** One usage error: exit 2, nothing on stdout, exactly the message and the help hint. */
async function usageError(run: Run, c: Case, args: string[], message: string): Promise<void> {
  const r = await run([...c.command, ...args]);
  expect({ args, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
    args,
    code: 2,
    stdout: "",
    stderr: `${c.prefix}: ${message}\nRun "${c.helpWith ?? c.prefix} --help" for usage.\n`,
  });
}

// Through the real binary: each command is wired to the shared prologue (one process per
// check: they cost ~0.7 s of CPU each, so the full matrix runs in-process below).
describe.each(cases)("$prefix (the binary)", (c) => {
  it("--help prints the help on stdout and exits 0, even after an unknown flag", async () => {
    const r = await runCli([...c.command, c.typo[0], "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(c.helpSays);
    expect(r.stderr).toBe("");
  });

  it("an unknown flag is a usage error naming it and the flag meant", async () => {
    const [typo, meant] = c.typo;
    await usageError(runCli, c, [typo, "x"], `unknown option "${typo}" (did you mean "${meant}"?)`);
  });
});

describe("values read by the commands (the binary)", () => {
  it("durations, integers and commands are usage errors in the same shape", async () => {
    await Promise.all([
      usageError(
        runCli,
        cases[0] as Case,
        ["--admin", "127.0.0.1:1", "--watch", "--interval", "50ms"],
        '--interval: expected a duration >= 100ms, got "50ms"',
      ),
      usageError(
        runCli,
        cases[1] as Case,
        ["--admin", "127.0.0.1:1", "--count", "1.5"],
        '--count: expected an integer >= 1, got "1.5"',
      ),
      usageError(
        runCli,
        cases[4] as Case,
        ["--tls-cert", "c", "--tls-key", "k", "--port", "70000"],
        '--port: expected an integer in 0..65535, got "70000"',
      ),
      usageError(
        runCli,
        cases[7] as Case,
        ["stats"],
        'unknown command "stats" (did you mean "stat"?)',
      ),
    ]);
  });
});

describe.each(cases)("$prefix (every prologue rule, in-process)", (c) => {
  it("-h and --help print the help and exit 0", async () => {
    for (const flag of ["-h", "--help"]) {
      const r = await inProcess([...c.command, flag]);
      expect(r).toMatchObject({ code: 0, stderr: "" });
      expect(r.stdout).toContain(c.helpSays);
    }
  });

  it("unknown flags, missing values, values of boolean flags and stray arguments exit 2", async () => {
    const run = inProcess;
    await usageError(run, c, ["--zzzzzzzz"], 'unknown option "--zzzzzzzz"');
    await usageError(run, c, ["-Z"], 'unknown option "-Z"');
    await usageError(run, c, [c.stringFlag], `${c.stringFlag}: expected a value`);
    await usageError(
      run,
      c,
      [c.stringFlag, "--help-me"],
      `${c.stringFlag}: expected a value, got the option "--help-me" (write ${c.stringFlag}=--help-me if that is the value)`,
    );
    if (c.booleanFlag !== undefined)
      await usageError(
        run,
        c,
        [`${c.booleanFlag}=yes`],
        `${c.booleanFlag}: expected no value, got "yes"`,
      );
    if (c.noPositionals) await usageError(run, c, ["extra"], 'unexpected argument "extra"');
  });
});
