// The one command-line parser of every command: node:util parseArgs with `-h`/`--help` and
// `--version` added, negative numbers taken as values (so `--memory -4GiB` is a bad size, not a
// missing value), at most a given number of positionals, and each failure as a UsageError that
// names the option or the argument.
import { parseArgs } from 'node:util';
import { OptionError, UsageError } from './units.js';

/** The options a command takes: long name -> string or boolean. */
export type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

/** What was parsed; `wants` is set when help or the version was asked for. */
export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  wants?: 'help' | 'version';
}

/**
 * Parses `argv` against `options` plus help and version.
 * @param maxPositionals how many positional arguments the command takes
 * @throws UsageError for an unknown option, a missing value or an unexpected argument
 */
export function parseCommandLine(argv: readonly string[], options: OptionSpec, maxPositionals: number): ParsedArgs {
  const spec = { ...options, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } } as const;
  // parseArgs takes "-4GiB" after a string option for another option; join such a value to it.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([^=]+)$/.exec(argv[i])?.[1];
    if (name !== undefined && options[name]?.type === 'string' && /^-[\d.]/.test(argv[i + 1] ?? '')) {
      args.push(`${argv[i]}=${argv[++i]}`);
    } else args.push(argv[i]);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: spec, strict: true, allowPositionals: true });
  } catch (e) {
    throw cliError(e as Error);
  }
  const { values, positionals } = parsed;
  const wants = values.help ? 'help' : values.version ? 'version' : undefined;
  if (!wants && positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[maxPositionals])}${maxPositionals === 0 ? ' (this command takes options only)' : ''}`);
  }
  delete values.help;
  delete values.version;
  return { values, positionals, ...(wants ? { wants } : {}) };
}

/** A parseArgs error as a UsageError naming the option. */
function cliError(e: Error): UsageError {
  const name = /'(-{1,2}[^' ]+)/.exec(e.message)?.[1].replace(/^-+/, '');
  const code = (e as { code?: string }).code;
  if (name === undefined) return new UsageError(e.message);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return new OptionError(name, 'unknown option (see --help)');
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return new OptionError(name, 'needs a value (see --help)');
  return new OptionError(name, e.message);
}
