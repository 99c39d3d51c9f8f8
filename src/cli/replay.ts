// `vfio-dirty replay TRACE.jsonl`: runs a recorded trace against a fresh engine and prints each
// read's dirty pages and runs (or JSON lines with --json), optionally exporting every read's
// bitmap and runs to a directory. The first bad line stops the replay: its line number and the
// reason go to stderr, and the exit status is 1.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine } from '../index.js';
import { replayTrace, type ReadResult } from '../sim/replay.js';
import { TraceError } from '../sim/trace.js';
import { cliError } from './options.js';
import { OptionError } from './units.js';
import type { Io } from './main.js';

export interface ReplayOptions {
  trace: string;
  json: boolean;
  export?: string;
  /** Most runs printed per read in text mode. */
  maxRuns: number;
  help: boolean;
}

/** Parses `replay` arguments. @throws OptionError naming the option */
export function parseReplayOptions(argv: string[]): ReplayOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean' },
        json: { type: 'boolean' },
        export: { type: 'string' },
        'max-runs': { type: 'string' },
      },
    });
  } catch (e) {
    throw cliError(e as Error);
  }
  const { values, positionals } = parsed;
  const help = values.help === true;
  if (!help && positionals.length !== 1) {
    throw new OptionError('trace', positionals.length === 0 ? 'give the trace file: vfio-dirty replay TRACE.jsonl' : `one trace file, got ${positionals.length}`);
  }
  let maxRuns = 16;
  if (values['max-runs'] !== undefined) {
    if (!/^\d+$/.test(values['max-runs'])) throw new OptionError('max-runs', `expected a whole number, got ${JSON.stringify(values['max-runs'])}`);
    maxRuns = Number(values['max-runs']);
  }
  return { trace: positionals[0] ?? '', json: values.json === true, export: values.export, maxRuns, help };
}

export function replayHelp(): string {
  return [
    'Usage: vfio-dirty replay TRACE.jsonl [options]',
    '',
    'Replays a trace of engine events (one JSON object per line; the format is in the README) in a',
    'fresh engine: one process, one type1v2 container, the devices the trace declares (else one',
    'emulated device "dev0"). Each "read" prints its dirty pages and runs. The first bad line stops',
    'the replay with its line number and the reason (exit status 1); nothing after it runs.',
    '',
    'Options:',
    '  --json          print one JSON object per read (runs, bitmap as hex) instead of text (default off)',
    '  --export DIR    write read-NNN.bitmap (kernel layout) and read-NNN.runs.json per read (default none)',
    '  --max-runs N    runs printed per read in text mode (default 16)',
    '  --help          show this help',
  ].join('\n');
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** A read as JSON: u64 values as hex strings, the bitmap as hex bytes. */
export function readJson(r: ReadResult): Record<string, unknown> {
  return {
    read: r.index,
    line: r.line,
    ...(r.label ? { label: r.label } : {}),
    iova: hex(r.iova),
    size: hex(r.size),
    pgsize: Number(r.pgsize),
    pages: r.pages,
    dirty: r.count,
    runs: r.runs.map((x) => ({ iova: hex(x.iova), length: hex(x.length) })),
  };
}

function readText(r: ReadResult, maxRuns: number): string {
  const head = `read ${r.index} (line ${r.line}${r.label ? `, ${r.label}` : ''}) [${hex(r.iova)}, +${hex(r.size)}) pgsize ${r.pgsize}: ` +
    `${r.count} dirty page${r.count === 1 ? '' : 's'} in ${r.runs.length} run${r.runs.length === 1 ? '' : 's'}`;
  const lines = [head];
  for (const x of r.runs.slice(0, maxRuns)) lines.push(`  ${hex(x.iova)} +${hex(x.length)}`);
  if (r.runs.length > maxRuns) lines.push(`  ... ${r.runs.length - maxRuns} more runs`);
  return lines.join('\n');
}

/** Runs a replay; returns the exit status. */
export async function runReplay(o: ReplayOptions, io: Io): Promise<number> {
  let text: string;
  try {
    text = readFileSync(o.trace, 'utf8');
  } catch (e) {
    throw new OptionError('trace', `cannot read ${o.trace}: ${(e as Error).message}`);
  }
  if (o.export) mkdirSync(o.export, { recursive: true });
  const engine = await createEngine();
  const onRead = (r: ReadResult) => {
    if (o.json) io.out.write(`${JSON.stringify({ ...readJson(r), bitmap: Buffer.from(r.bytes).toString('hex') })}\n`);
    else io.out.write(`${readText(r, o.maxRuns)}\n`);
    if (o.export) {
      const name = `read-${String(r.index).padStart(3, '0')}`;
      writeFileSync(join(o.export, `${name}.bitmap`), r.bytes);
      writeFileSync(join(o.export, `${name}.runs.json`), `${JSON.stringify(readJson(r))}\n`);
    }
  };
  try {
    const n = replayTrace(engine, text, onRead);
    if (!o.json) io.out.write(`replayed ${n.events} events, ${n.reads} reads\n`);
    return 0;
  } catch (e) {
    if (e instanceof TraceError) {
      io.err.write(`${o.trace}:${e.line}: ${e.reason}\n`);
      return 1;
    }
    throw e;
  }
}
