// `vfio-dirty simulate`: the simulation on a fresh engine, then its outputs: progress, the text or
// JSON summary, the HTML report, and each harvest's files (--export, through the writers of
// src/export, as the simulator lends each harvest's report).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createEngine } from '../index.js';
import type { DirtyReport } from '../export/dirty_report.js';
import { writeReportFiles } from '../export/report_files.js';
import { writeFileStreamed } from '../export/file_sink.js';
import { renderHtmlReport } from '../sim/html_report.js';
import { simulate, type SimEngine } from '../sim/simulator.js';
import type { SimConfig } from '../sim/config.js';
import { GuestLayout } from '../sim/guest_layout.js';
import { RemoteEngine } from '../server/remote_engine.js';
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
  if (o.output.server === undefined) return simulateOn(await createEngine(), o, io);
  const engine = await RemoteEngine.connect(o.output.server, { shmBytes: bitmapBytes(o.config) });
  try {
    return await simulateOn(engine, o, io);
  } finally {
    engine.dispose();
  }
}

/** Bytes of the kernel-layout bitmap of the whole guest: the shared file a remote run asks for. */
function bitmapBytes(c: SimConfig): number {
  return Math.ceil(new GuestLayout(c.memory, c.lowMemory).gpaPages / 64) * 8;
}

async function simulateOn(engine: SimEngine, o: SimulateOptions, io: Io): Promise<number> {
  // With --json the summary goes to stdout alone; progress goes to stderr then.
  const progress = progressFor(o.output.progress, o.output.json ? io.err : io.out, o.config.downtimeLimit);
  const dir = o.output.export;
  if (dir !== undefined) mkdirSync(dir, { recursive: true });
  const onHarvest = dir === undefined ? undefined : (round: number, report: DirtyReport) => {
    writeReportFiles(dir, roundFileName(round), report, o.output.exportFormats, { round });
  };
  const run = (trace?: (line: string) => void) => simulate(engine, o.config, { progress, onHarvest, trace });
  let result: ReturnType<typeof simulate> | undefined;
  // --trace: the run's events streamed to the file, which appears whole when the run is over.
  if (o.output.trace !== undefined) writeFileStreamed(o.output.trace, (sink) => { result = run((line) => sink.write(`${line}\n`)); });
  else result = run();
  const { summary, heatmap } = result!;
  if (o.output.report) writeFileSync(o.output.report, renderHtmlReport(summary, heatmap));
  if (o.output.json) io.out.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    io.out.write(`\n${formatSummary(summary)}\n`);
    if (o.output.report) io.out.write(`  report:          ${o.output.report}\n`);
    if (o.output.trace !== undefined) io.out.write(`  trace:           ${o.output.trace} (vfio-dirty replay reproduces every harvest)\n`);
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
