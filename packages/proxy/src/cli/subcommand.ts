import { parseArgs } from "node:util";
import { suggest } from "@mesh/core";
import { parseDuration } from "../config/duration.js";

/** One flag of a subcommand, in `node:util` `parseArgs` terms (`-h/--help` is implied). */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
}

/** A subcommand's flags by long name. */
export type Flags = Readonly<Record<string, FlagSpec>>;

type FlagValue<S extends FlagSpec> = S extends { multiple: true }
  ? (S["type"] extends "string" ? string : boolean)[]
  : S["type"] extends "string"
    ? string
    : boolean;

/** The flags given, typed by their specs (absent ones are `undefined`). */
export type FlagValues<F extends Flags> = { [K in keyof F]?: FlagValue<F[K]> };

/** What a subcommand was given: its flags and (when it takes them) its positional arguments. */
export interface SubcommandArgs<F extends Flags> {
  values: FlagValues<F>;
  positionals: string[];
}

/** A `mesh-proxy` subcommand's prologue: its name, help text and flags. */
export interface Subcommand<F extends Flags> {
  /** The word after `mesh-proxy` (`stat`, `inject`); `""` for `mesh-proxy` itself. */
  readonly name: string;
  /** Printed on `-h/--help` (exit 0). */
  readonly help: string;
  readonly flags: F;
  /** Whether it takes positional arguments; without, one is a usage error. Default false. */
  readonly positionals?: boolean;
  /** Flags that select this subcommand and so belong in the help hint (`--kubernetes`). */
  readonly selector?: string;
}

/** Where a subcommand writes. */
export interface SubcommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The command should exit now with this code: after `--help` (0) or a usage error (2). */
export class Exit {
  static readonly help = new Exit(0);
  static readonly usage = new Exit(2);
  private constructor(readonly code: 0 | 2) {}
}

/**
 * Parses a subcommand's argv the one way every `mesh-proxy` subcommand does, then hands the
 * flags to `read`, which turns them into the command's settings (throwing for a bad value).
 *
 * - `-h`/`--help` anywhere before `--` prints `help` to stdout: {@link Exit.help}.
 * - An unknown flag, a flag missing its value (or followed by another flag), a value given to
 *   a boolean flag, a positional argument where none is taken, or anything `read` throws is a
 *   usage error: one line `mesh-proxy <name>: <message>` (an unknown flag with the nearest
 *   known one, `did you mean "--watch"?`) and a pointer to `--help` on stderr:
 *   {@link Exit.usage} (exit code 2).
 */
export async function parseSubcommand<F extends Flags, T>(
  command: Subcommand<F>,
  argv: readonly string[],
  io: SubcommandIo,
  read: (args: SubcommandArgs<F>) => T | Promise<T>,
): Promise<T | Exit> {
  const options = { ...command.flags, help: { type: "boolean", short: "h" } } as const;
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (tokens.some((t) => t.kind === "option" && t.name === "help")) {
    io.out(command.help);
    return Exit.help;
  }
  try {
    for (const token of tokens) {
      if (token.kind === "option") checkOption(token, command.flags);
      else if (token.kind === "positional" && command.positionals !== true)
        throw new TypeError(`unexpected argument ${JSON.stringify(token.value)}`);
    }
    return await read({ values: values as FlagValues<F>, positionals });
  } catch (err) {
    const prefix = command.name === "" ? "mesh-proxy" : `mesh-proxy ${command.name}`;
    const helpWith = command.selector === undefined ? prefix : `${prefix} ${command.selector}`;
    io.err(`${prefix}: ${(err as Error).message}\nRun "${helpWith} --help" for usage.\n`);
    return Exit.usage;
  }
}

interface OptionToken {
  name: string;
  rawName: string;
  value?: string | undefined;
  inlineValue?: boolean | undefined;
}

function checkOption(token: OptionToken, flags: Flags): void {
  const spec = Object.hasOwn(flags, token.name) ? flags[token.name] : undefined;
  if (spec === undefined) {
    const known = Object.keys(flags).map((name) => `--${name}`);
    const hint = token.rawName.startsWith("--") ? suggest(token.rawName, { known }) : undefined;
    throw new TypeError(
      `unknown option ${JSON.stringify(token.rawName)}${hint === undefined ? "" : ` (did you mean ${hint}?)`}`,
    );
  }
  if (spec.type === "boolean") {
    if (token.value !== undefined)
      throw new TypeError(
        `${token.rawName}: expected no value, got ${JSON.stringify(token.value)}`,
      );
    return;
  }
  if (token.value === undefined) throw new TypeError(`${token.rawName}: expected a value`);
  // `--admin --json`: the next flag is not this one's value (write `--path=-x` for that).
  if (token.inlineValue === false && token.value.startsWith("-") && token.value !== "-")
    throw new TypeError(
      `${token.rawName}: expected a value, got the option ${JSON.stringify(token.value)} (write ${token.rawName}=${token.value} if that is the value)`,
    );
}

/**
 * A duration flag (`500ms`, `2s`, `1m30s`) in milliseconds, `fallback` when absent; a
 * `RangeError` naming the flag for anything else or anything under `min` ms.
 */
export function durationFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 1,
): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new RangeError(
      `--${name}: expected a duration such as 500ms or 2s, got ${JSON.stringify(value)}`,
    );
  if (ms < min)
    throw new RangeError(
      `--${name}: expected a duration >= ${min}ms, got ${JSON.stringify(value)}`,
    );
  return ms;
}

/**
 * An integer flag in `min..max`, `fallback` when absent; a `RangeError` naming the flag
 * otherwise (`--count: expected an integer >= 1, got "0"`).
 */
export function integerFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = value.trim() === "" ? Number.NaN : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new RangeError(`--${name}: expected an integer ${range}, got ${JSON.stringify(value)}`);
  }
  return n;
}
