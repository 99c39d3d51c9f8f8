#!/usr/bin/env node
// The `vfio-dirty` command: one table of commands (simulate, replay), each with its summary,
// parser, help and runner. Exit status: 0 done (a migration that did not converge included), 1
// the run failed (a bad trace line, a file that could not be written), 2 bad usage. Every error
// is one line `vfio-dirty: ...`, never a stack trace; a closed stdout ends the output quietly.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command, Io } from './command.js';
import { replayCommand } from './replay.js';
import { simulateCommand } from './simulate.js';
import { dirtyRateCommand } from './dirty_rate.js';
import { serveCommand } from '../server/cli.js';
import { guardStream, printable } from './terminal.js';
import { UsageError } from './units.js';
import { packageVersion } from './version.js';

export type { Io } from './command.js';

type AnyCommand = Command<{ help: boolean; version: boolean }>;

/** Every command, in help order. */
export const COMMANDS: ReadonlyMap<string, AnyCommand> = new Map(
  ([simulateCommand, replayCommand, serveCommand, dirtyRateCommand] as AnyCommand[]).map((c) => [c.name, c]),
);

export function mainHelp(): string {
  const rows: [string, string][] = [
    ...[...COMMANDS.values()].map((c): [string, string] => [c.usage, c.summary]),
    ['help [command]', 'show this help, or a command\'s options with their defaults'],
  ];
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [
    'Usage: vfio-dirty <command> [options]',
    '',
    'Commands:',
    ...rows.map(([a, b]) => `  ${a.padEnd(width)}${b}`),
    '',
    'Options: -h, --help (this help), --version (the version of vfio-dirty).',
    'Run `vfio-dirty <command> --help` for the options of a command.',
  ].join('\n');
}

/** Runs the command line `argv` (without node and the script); returns the exit status. */
export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name === undefined ? undefined : COMMANDS.get(name);
  const fail = (message: string) => io.err.write(`vfio-dirty: ${printable(message)}\n`);
  try {
    if (name === undefined || name === '--help' || name === '-h') {
      io.out.write(`${mainHelp()}\n`);
      return name === undefined ? 2 : 0;
    }
    if (name === '--version') {
      io.out.write(`vfio-dirty ${packageVersion()}\n`);
      return 0;
    }
    if (name === 'help') {
      const topic = rest[0] === undefined ? undefined : COMMANDS.get(rest[0]);
      if (rest[0] !== undefined && !topic) throw new UsageError(`help: unknown command ${JSON.stringify(rest[0])}`);
      io.out.write(`${topic ? topic.help() : mainHelp()}\n`);
      return 0;
    }
    if (!cmd) {
      fail(`unknown command ${JSON.stringify(name)}`);
      io.err.write(`\n${mainHelp()}\n`);
      return 2;
    }
    const o = cmd.parse(rest);
    if (o.help) {
      io.out.write(`${cmd.help()}\n`);
      return 0;
    }
    if (o.version) {
      io.out.write(`vfio-dirty ${packageVersion()}\n`);
      return 0;
    }
    return await cmd.run(o, io);
  } catch (e) {
    const where = cmd ? `${cmd.name}: ` : '';
    if (e instanceof UsageError) {
      fail(`${where}${e.message}`);
      io.err.write(`Run \`vfio-dirty ${cmd ? `${cmd.name} ` : ''}--help\` for the options and their defaults.\n`);
      return 2;
    }
    fail(`${where}${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

function isEntry(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  const failed = (e: Error) => {
    process.stderr.write(`vfio-dirty: ${printable(e.message)}\n`);
    process.exitCode = 1;
  };
  const io: Io = { out: guardStream(process.stdout, failed), err: guardStream(process.stderr, () => {}) };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode ??= code;
    },
    (e: unknown) => failed(e instanceof Error ? e : new Error(String(e))),
  );
}
