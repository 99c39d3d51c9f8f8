// `vfio-dirty compare`: one configuration under several tracking strategies, or swept over one
// simulate option, with seeds; the cells run on worker threads; then the table, --json and the
// HTML report with the runs side by side.
import { writeFileSync } from 'node:fs';
import { renderCompareReport } from '../compare/html.js';
import { parseCompareOptions, MAX_CELLS, type CompareOptions } from '../compare/matrix.js';
import { runCells } from '../compare/run.js';
import { compareJson, formatCompare, type CellResult } from '../compare/table.js';
import type { Command, Io } from './command.js';
import { matrixProgress } from './compare_progress.js';
import { optionLines } from './options.js';

/** Runs the comparison with the outputs `o` asks for; returns the exit status. */
export async function runCompare(o: CompareOptions, io: Io): Promise<number> {
  // With --json the document goes to stdout alone; progress goes to stderr then.
  const progress = matrixProgress(o.output.progress, o.output.json ? io.err : io.out, o.cells.length);
  let summaries;
  try {
    summaries = await runCells(o.cells, o.output.jobs, progress);
  } finally {
    progress.finish();
  }
  const results: CellResult[] = o.cells.map((cell, i) => ({ cell, summary: summaries[i] }));
  if (o.output.report) writeFileSync(o.output.report, renderCompareReport(o.matrix, results));
  if (o.output.json) io.out.write(`${JSON.stringify(compareJson(o.matrix, results), null, 2)}\n`);
  else {
    io.out.write(`${o.output.progress === 'none' ? '' : '\n'}${formatCompare(o.matrix, results)}\n`);
    if (o.output.report) io.out.write(`\nreport: ${o.output.report}\n`);
  }
  return 0;
}

/** The help text of `compare`: its own options; simulate's are listed by `simulate --help`. */
export function compareHelp(): string {
  const rows: [string, string][] = [
    ['--strategies LIST', 'compare the tracking strategies: all, or a comma-separated list of type1, device, iommufd (sets --tracking per cell)'],
    ['--sweep NAME=V1,V2,...', 'sweep one simulate option over these values, e.g. dirty-rate=256MiB/s,1GiB/s, memory=4GiB,16GiB, bandwidth=1Gbit/s,10Gbit/s, tracker-ranges=1,4, tracking-page-size=4KiB,2MiB; with --strategies, every pair runs'],
    ['--seeds N', 'run each combination with N seeds, from --seed up (default 1 seed: --seed)'],
    ['--seed-list LIST', 'run each combination with these seeds, e.g. 1,7,42'],
    ['--jobs N', 'worker threads, one engine each; 0 runs the cells one after another on this thread (default: the available cores)'],
    ['--json', 'print the matrix and every cell\'s full summary as JSON instead of the table (default off)'],
    ['--report FILE', 'write a self-contained HTML page with the runs side by side: dirty pages and bytes sent per round, downtime and bytes sent per cell (default none)'],
    ['--progress MODE', 'auto | bar | lines | none: cells done out of all and the rounds of those running; auto draws a bar on a terminal and plain lines otherwise (default auto)'],
    ['-h, --help', 'show this help'],
    ['--version', 'print the version of vfio-dirty'],
  ];
  return [
    'Usage: vfio-dirty compare [simulate options] [--strategies LIST] [--sweep NAME=V1,V2,...]',
    '                          [--seeds N | --seed-list LIST] [--jobs N] [--json] [--report FILE]',
    '',
    'Runs one configuration, made of every simulate option (flags and --config, with simulate\'s',
    'defaults and checks), as a matrix of simulated migrations: tracking strategies x values of one',
    'option x seeds, each cell on a fresh engine, spread over worker threads. Prints one row per',
    'cell and each cell\'s simulate command line, which reruns it alone with the same figures.',
    `At most ${MAX_CELLS} cells. \`vfio-dirty simulate --help\` lists the simulate options;`,
    '--export and --trace are simulate\'s alone.',
    '',
    'Options:',
    ...optionLines(rows),
  ].join('\n');
}

/** The `compare` command of the table in main.ts. */
export const compareCommand: Command<CompareOptions> = {
  name: 'compare',
  usage: 'compare',
  summary: 'run one configuration under several tracking strategies or over a swept option, side by side (worker threads)',
  help: compareHelp,
  parse: parseCompareOptions,
  run: runCompare,
};
