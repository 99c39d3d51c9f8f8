#!/usr/bin/env node
// The `vfio-dirty` command: `simulate` runs a pre-copy live migration on the engine, `replay`
// runs a recorded trace against it. Exit status: 0 done, 1 the run failed (a bad trace line, a
// migration that did not converge is still 0), 2 bad usage.
import { realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createEngine } from '../index.js';
import { renderHtmlReport } from '../sim/html_report.js';
import { simulate } from '../sim/simulator.js';
import { OptionError } from './units.js';
import { parseSimulateOptions, simulateHelp } from './options.js';
import { progressFor } from './progress.js';
import { formatSummary } from './summary_text.js';
import { parseReplayOptions, replayHelp, runReplay } from './replay.js';
import { runServe, serveHelp } from '../server/cli.js';

/** Where the command writes: stdout, stderr (progress and errors). */
export interface Io {
  out: { write(s: string): unknown; isTTY?: boolean; columns?: number };
  err: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

export function mainHelp(): string {
  return [
    'Usage: vfio-dirty <command> [options]',
    '',
    'Commands:',
    '  simulate            run a pre-copy live migration of a VM on the engine (`npm start` runs it on',
    '                      its defaults: a 16 GiB guest, a vGPU, a mixed workload)',
    '  replay TRACE.jsonl  replay a recorded trace of map/unmap/pin/unpin/write/start/stop/read events',
    '  serve --listen PATH run the engine as a daemon on a Unix socket (docs/PROTOCOL.md)',
    '  help [command]      show this help, or a command\'s options with their defaults',
    '',
    'Run `vfio-dirty <command> --help` for the options of a command.',
  ].join('\n');
}

/** Runs the command line `argv` (without node and the script); returns the exit status. */
export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h') {
      io.out.write(`${mainHelp()}\n`);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === 'help') {
      const topic = rest[0];
      io.out.write(`${topic === 'simulate' ? simulateHelp() : topic === 'replay' ? replayHelp() : topic === 'serve' ? serveHelp() : mainHelp()}\n`);
      return 0;
    }
    if (cmd === 'simulate') return await runSimulate(rest, io);
    if (cmd === 'serve') return await runServe(rest, io.out);
    if (cmd === 'replay') {
      const o = parseReplayOptions(rest);
      if (o.help) {
        io.out.write(`${replayHelp()}\n`);
        return 0;
      }
      return await runReplay(o, io);
    }
    io.err.write(`vfio-dirty: unknown command ${JSON.stringify(cmd)}\n\n${mainHelp()}\n`);
    return 2;
  } catch (e) {
    if (e instanceof OptionError) {
      io.err.write(`vfio-dirty ${cmd}: ${e.message}\nRun \`vfio-dirty ${cmd} --help\` for the options and their defaults.\n`);
      return 2;
    }
    throw e;
  }
}

async function runSimulate(argv: string[], io: Io): Promise<number> {
  const o = parseSimulateOptions(argv);
  if (o.help) {
    io.out.write(`${simulateHelp()}\n`);
    return 0;
  }
  const engine = await createEngine();
  // With --json the summary goes to stdout alone; progress goes to stderr then.
  const progressOut = o.output.json ? io.err : io.out;
  const progress = progressFor(o.output.progress, progressOut, o.config.downtimeLimit);
  const { summary, heatmap } = simulate(engine, o.config, { progress, exportDir: o.output.export });
  if (o.output.report) writeFileSync(o.output.report, renderHtmlReport(summary, heatmap));
  if (o.output.json) io.out.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    io.out.write(`\n${formatSummary(summary)}\n`);
    if (o.output.report) io.out.write(`  report:          ${o.output.report}\n`);
    if (o.output.export) io.out.write(`  exported:        ${summary.roundsDetail.length - 1} rounds to ${o.output.export}\n`);
  }
  return 0;
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
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`vfio-dirty: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
