// What a command of `vfio-dirty` is: one row of the table in main.ts.
import type { OutStream } from './terminal.js';

/** Where a command writes: stdout, stderr (progress and errors). */
export interface Io {
  out: OutStream;
  err: OutStream;
}

/** A command: its name, a one-line summary, its help, its parser and its runner. */
export interface Command<O extends { help: boolean; version: boolean }> {
  name: string;
  /** How it is called, for the command list: `replay TRACE.jsonl`. */
  usage: string;
  summary: string;
  help(): string;
  /** Parses and checks the arguments after the command's name. @throws UsageError */
  parse(argv: string[]): O;
  /** Runs it; returns the exit status. Throws for runtime failures (exit status 1). */
  run(options: O, io: Io): Promise<number>;
}
