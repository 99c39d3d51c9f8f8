// `vfio-dirty replay TRACE.jsonl`: runs a recorded trace against a fresh engine and prints each
// read's dirty pages and runs (or JSON lines with --json), optionally exporting every read's
// files to a directory with the writers of src/export. The first bad line stops the replay: its
// line number and the reason go to stderr, and the exit status is 1.
import { mkdirSync, readFileSync } from 'node:fs';
import { createEngine } from '../index.js';
import type { ExportFormat } from '../export/report_files.js';
import { writeReportFiles } from '../export/report_files.js';
import { forEachRunBatch } from '../export/run_batches.js';
import { writeRunsJson } from '../export/runs_json.js';
import { replayTrace, type ReadResult } from '../sim/replay.js';
import { TraceError } from '../sim/trace.js';
import { parseCommandLine } from './args.js';
import type { Command, Io } from './command.js';
import { DEFAULT_EXPORT_FORMATS, EXPORT_FORMATS } from './options.js';
import { checkOutputDir } from './output_paths.js';
import { printable } from './terminal.js';
import { OptionError, parseChoiceList, parseInteger } from './units.js';

export interface ReplayOptions {
  trace: string;
  json: boolean;
  export?: string;
  exportFormats: Set<ExportFormat>;
  /** Most runs printed per read in text mode. */
  maxRuns: number;
  help: boolean;
  version: boolean;
}

/**
 * Parses `replay` arguments and checks the export directory.
 * @throws UsageError (an OptionError naming the option, where there is one)
 */
export function parseReplayOptions(argv: string[]): ReplayOptions {
  const { values, positionals, wants } = parseCommandLine(argv, {
    json: { type: 'boolean' },
    export: { type: 'string' },
    'export-format': { type: 'string' },
    'max-runs': { type: 'string' },
  }, 1);
  const o: ReplayOptions = {
    trace: positionals[0] ?? '',
    json: values.json === true,
    exportFormats: parseChoiceList('export-format', (values['export-format'] as string | undefined) ?? DEFAULT_EXPORT_FORMATS, EXPORT_FORMATS),
    maxRuns: values['max-runs'] === undefined ? 16 : parseInteger('max-runs', values['max-runs'] as string, 0, 2 ** 31),
    help: wants === 'help',
    version: wants === 'version',
  };
  if (wants) return o;
  if (positionals.length === 0) throw new OptionError('trace', 'give the trace file: vfio-dirty replay TRACE.jsonl');
  if (typeof values.export === 'string') {
    checkOutputDir('export', values.export);
    o.export = values.export;
  } else if (values['export-format'] !== undefined) throw new OptionError('export-format', 'needs --export DIR');
  return o;
}

export function replayHelp(): string {
  return [
    'Usage: vfio-dirty replay TRACE.jsonl [options]',
    '',
    'Replays a trace of engine events (one JSON object per line; the format is in docs/simulate.md) in',
    'a fresh engine: one process, one type1v2 container, the devices the trace declares (else one',
    'emulated device "dev0"). Each "read" prints its dirty pages and runs. The first bad line stops',
    'the replay with its line number and the reason (exit status 1); nothing after it runs.',
    '',
    'Options:',
    '  --json                print one JSON object per read (runs, bitmap as hex) instead of text (default off)',
    '  --export DIR          write read-NNN.bitmap, read-NNN.runs.json, read-NNN.runs.bin per read, as',
    '                        --export-format says (default none)',
    `  --export-format LIST  all, or a comma-separated list of ${EXPORT_FORMATS.join(', ')} (default ${DEFAULT_EXPORT_FORMATS})`,
    '  --max-runs N          runs printed per read in text mode (default 16)',
    '  -h, --help            show this help',
    '  --version             print the version of vfio-dirty',
  ].join('\n');
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The fields that say where a read came from, heading its JSON document. */
function readMeta(r: ReadResult): Record<string, string | number> {
  return { read: r.index, line: r.line, ...(r.label ? { label: r.label } : {}) };
}

/** A read as text: its range, counts and first runs; the label escaped for the terminal. */
function readText(r: ReadResult, maxRuns: number): string {
  const lines: string[] = [];
  let runs = 0;
  const pg = r.pgsize;
  forEachRunBatch(r.report.bitmap, (pairs) => {
    for (let i = 0; i < pairs.length && lines.length < maxRuns; i += 2) {
      lines.push(`  ${hex(r.iova + BigInt(pairs[i]) * pg)} +${hex(BigInt(pairs[i + 1]) * pg)}`);
    }
    runs += pairs.length >>> 1;
  });
  const head = `read ${r.index} (line ${r.line}${r.label ? `, ${printable(r.label)}` : ''}) [${hex(r.iova)}, +${hex(r.size)}) pgsize ${r.pgsize}: ` +
    `${r.count} dirty page${r.count === 1 ? '' : 's'} in ${runs} run${runs === 1 ? '' : 's'}`;
  if (runs > maxRuns) lines.push(`  ... ${runs - maxRuns} more runs`);
  return [head, ...lines].join('\n');
}

/** Runs a replay; returns the exit status. */
export async function runReplay(o: ReplayOptions, io: Io): Promise<number> {
  let text: string;
  try {
    text = readFileSync(o.trace, 'utf8');
  } catch (e) {
    throw new OptionError('trace', `cannot read ${o.trace}: ${(e as Error).message}`);
  }
  const engine = await createEngine();
  if (o.export) mkdirSync(o.export, { recursive: true });
  const onRead = (r: ReadResult) => {
    if (o.json) {
      writeRunsJson((s) => io.out.write(s), r.report, readMeta(r), { bitmap: true });
      io.out.write('\n');
    } else io.out.write(`${readText(r, o.maxRuns)}\n`);
    if (o.export) writeReportFiles(o.export, `read-${String(r.index).padStart(3, '0')}`, r.report, o.exportFormats, readMeta(r));
  };
  try {
    const n = replayTrace(engine, text, onRead);
    if (!o.json) io.out.write(`replayed ${n.events} events, ${n.reads} reads\n`);
    return 0;
  } catch (e) {
    if (e instanceof TraceError) {
      io.err.write(`vfio-dirty: ${printable(`${o.trace}:${e.line}: ${e.reason}`)}\n`);
      return 1;
    }
    throw e;
  }
}

/** The `replay` command of the table in main.ts. */
export const replayCommand: Command<ReplayOptions> = {
  name: 'replay',
  usage: 'replay TRACE.jsonl',
  summary: 'replay a recorded trace of map/unmap/pin/unpin/write/start/stop/read events',
  help: replayHelp,
  parse: parseReplayOptions,
  run: runReplay,
};
