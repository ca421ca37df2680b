/**
 * Command-line options for the scripts and benchmarks, through `node:util` parseArgs (strict):
 * an unknown option, a missing value or a value given to a flag is a UsageError naming the
 * option, and every command answers `--help` with its usage, built from the same declaration.
 */
import { parseArgs } from 'node:util';
import { isNumberText, notationNote } from '../src/schema/validator';
import { StartupError } from '../src/startup-error';

/** A wrong command line; its message says what is wrong and how the command is used. */
export class UsageError extends StartupError {}

type OptionSpec =
  | {
      type: 'string';
      /** What the value is, in the usage (`--name NAME`). */
      value: string;
      /** The value when the option is absent; the help text shows it. */
      default?: string;
      help: string;
    }
  | { type: 'boolean'; help: string };

export interface Command<O extends Record<string, OptionSpec>> {
  /** How to run it, e.g. `npm run key -- --name NAME --scopes SCOPES`. */
  usage: string;
  /** What it does, for `--help`. */
  summary?: string;
  options: O;
  /** Whether it takes arguments that are not options (the usage shows which). */
  positionals?: boolean;
}

/** A string option with a default always has a value; any other may be absent. */
type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O as O[K] extends { default: string } ? K : never]: string;
} & {
  [K in keyof O as O[K] extends { default: string } ? never : K]?: O[K]['type'] extends 'string'
    ? string
    : boolean;
};

/** The usage line and one line per option. */
export function helpText(command: Command<Record<string, OptionSpec>>): string {
  const lines = Object.entries(command.options).map(([name, spec]) =>
    spec.type === 'string'
      ? [
          `--${name} ${spec.value}`,
          spec.default === undefined ? spec.help : `${spec.help} (default ${spec.default})`,
        ]
      : [`--${name}`, spec.help],
  );
  lines.push(['-h, --help', 'this text']);
  const width = Math.max(...lines.map(([option]) => option.length));
  return [
    `usage: ${command.usage}`,
    ...(command.summary ? [command.summary] : []),
    ...lines.map(([option, help]) => `  ${option.padEnd(width)}  ${help}`),
  ].join('\n');
}

/**
 * `--rate -1` as `--rate=-1`: parseArgs calls a value starting with a dash ambiguous, so a negative
 * number never reached the option's own range check ("--rate must be ..."). A flag followed by
 * one (`--quiet -5`) is told it takes no value.
 */
function joinNegativeValues(
  argv: readonly string[],
  options: Record<string, OptionSpec>,
): string[] {
  const args: string[] = [];
  // After `--` every argument is a positional.
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  for (let i = 0; i < end; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    const negative = /^-\.?\d/.test(argv[i + 1] ?? '');
    if (negative && Object.hasOwn(options, name) && options[name].type === 'string') {
      args.push(`${argv[i]}=${argv[++i]}`);
    } else if (negative && Object.hasOwn(options, name)) {
      // parseArgs would call the number an unknown option ("Unknown option '-5'").
      throw new UsageError(`Option '${argv[i]}' takes no value, not ${argv[i + 1]}`);
    } else {
      args.push(argv[i]);
    }
  }
  return [...args, ...argv.slice(end)];
}

/**
 * Parses `argv` (without node and the script) against the command's options. `--help` prints
 * the help text and exits; a mistake throws a UsageError that names the option.
 */
export function parseCommandLine<const O extends Record<string, OptionSpec>>(
  argv: readonly string[],
  command: Command<O>,
): {
  values: OptionValues<O>;
  positionals: string[];
  /** The options on the command line, told apart from those left at their default. */
  given: ReadonlySet<string>;
} {
  const options = Object.fromEntries(
    Object.entries(command.options).map(([name, spec]) => [
      name,
      spec.type === 'string' ? { type: spec.type, default: spec.default } : { type: spec.type },
    ]),
  );
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv, command.options),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: command.positionals ?? false,
      tokens: true,
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${command.usage} (--help for more)`);
  }
  // parseArgs keeps the last of an option given twice: `--scopes read --scopes admin` was admin.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) {
      throw new UsageError(
        `Option '--${token.name}' is given twice: give it once\nusage: ${command.usage} (--help for more)`,
      );
    }
    seen.add(token.name);
  }
  if (parsed.values.help) {
    process.stdout.write(`${helpText(command)}\n`);
    process.exit(0);
  }
  return { values: parsed.values as OptionValues<O>, positionals: parsed.positionals, given: seen };
}

/** For an entry point: a UsageError is printed without a stack and the process exits with 2. */
export function exitOnUsageError(err: unknown): never {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

/**
 * For an entry point without error handling of its own: runs `read` (parseCommandLine and any
 * checks of the values) and exits with 2 on a UsageError.
 */
export function commandLineOrExit<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    exitOnUsageError(err);
  }
}

/**
 * An option's text as a number within limits, written as a number setting is (isNumberText);
 * otherwise a UsageError naming the option.
 */
export function numberOption(
  label: string,
  text: string,
  { min = 0, max = Infinity, integer = false } = {},
): number {
  const kind = integer ? 'integer' : 'number';
  const value = isNumberText({ type: kind }, text.trim()) ? Number(text) : NaN;
  if (value >= min && value <= max) return value;
  const range =
    max !== Infinity
      ? `${integer ? 'an' : 'a'} ${kind} from ${min} to ${max}`
      : min === 0
        ? `a non-negative ${kind}`
        : `${integer ? 'an' : 'a'} ${kind} of at least ${min}`;
  throw new UsageError(`${label} must be ${range}${notationNote(text)}`);
}
