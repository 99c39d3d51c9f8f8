// `vfio-dirty simulate`: the simulation on a fresh engine, then its outputs: progress, the text or
// JSON summary, the HTML report, and each harvest's files (--export, through the writers of
// src/export, as the simulator lends each harvest's report).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createEngine } from '../index.js';
import type { DirtyReport } from '../export/dirty_report.js';
import { writeReportFiles } from '../export/report_files.js';
import { renderHtmlReport } from '../sim/html_report.js';
import { simulate } from '../sim/simulator.js';
import type { Command, Io } from './command.js';
import { parseSimulateOptions, simulateHelp, type SimulateOptions } from './options.js';
import { progressFor } from './progress.js';
import { formatSummary } from './summary_text.js';

/** The file name of a round's exports, without its suffix: round-001. */
export function roundFileName(round: number): string {
  return `round-${String(round).padStart(3, '0')}`;
}

/** Runs the simulation with the outputs `o` asks for; returns the exit status. */
export async function runSimulate(o: SimulateOptions, io: Io): Promise<number> {
  const engine = await createEngine();
  // With --json the summary goes to stdout alone; progress goes to stderr then.
  const progress = progressFor(o.output.progress, o.output.json ? io.err : io.out, o.config.downtimeLimit);
  const dir = o.output.export;
  if (dir !== undefined) mkdirSync(dir, { recursive: true });
  const onHarvest = dir === undefined ? undefined : (round: number, report: DirtyReport) => {
    writeReportFiles(dir, roundFileName(round), report, o.output.exportFormats, { round });
  };
  const { summary, heatmap } = simulate(engine, o.config, { progress, onHarvest });
  if (o.output.report) writeFileSync(o.output.report, renderHtmlReport(summary, heatmap));
  if (o.output.json) io.out.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    io.out.write(`\n${formatSummary(summary)}\n`);
    if (o.output.report) io.out.write(`  report:          ${o.output.report}\n`);
    if (dir !== undefined) io.out.write(`  exported:        ${summary.roundsDetail.length - 1} rounds to ${dir} (${[...o.output.exportFormats].join(', ')})\n`);
  }
  return 0;
}

/** The `simulate` command of the table in main.ts. */
export const simulateCommand: Command<SimulateOptions> = {
  name: 'simulate',
  usage: 'simulate',
  summary: 'run a pre-copy live migration of a VM on the engine (`npm start` runs it on its defaults: a 16 GiB guest, a vGPU, a mixed workload)',
  help: simulateHelp,
  parse: parseSimulateOptions,
  run: runSimulate,
};
