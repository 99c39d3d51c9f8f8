// `vfio-dirty dirty-rate`: QEMU's calc-dirty-rate on a simulated guest (src/sim/dirty_rate.ts),
// with QMP's options (calc-time, calc-time-unit, sample-pages, mode) and the guest options of
// `simulate` (the same table, options.ts); prints query-dirty-rate's fields, the truth the engine
// knows and the estimate's error, as text or JSON.
import { createEngine } from '../index.js';
import {
  calcTimeMs, DEFAULT_SAMPLE_PAGES, DIRTY_RATE_MODES, MAX_CALC_TIME_MS, MAX_SAMPLE_PAGES, MAX_SAMPLED_PAGES, measureDirtyRate,
  MIN_CALC_TIME_MS, MIN_SAMPLE_PAGES, TIME_UNITS, type DirtyRateRequest, type DirtyRateResult,
} from '../sim/dirty_rate.js';
import type { SimConfig } from '../sim/config.js';
import { parseCommandLine } from './args.js';
import type { Command, Io } from './command.js';
import { checkGuest, defaultConfig, optionLines, SIM_OPTION, simOptionRow } from './options.js';
import { formatBytes, OptionError, parseChoice, parseInteger } from './units.js';

/** The options of `simulate` that describe the guest, shared as they are. */
const GUEST_OPTIONS = ['memory', 'low-memory', 'workload', 'dirty-rate', 'hot-fraction', 'hot-weight', 'seed', 'step', 'vcpus', 'cpu-log', 'dirty-ring-size'];

export interface DirtyRateOptions {
  config: SimConfig;
  request: DirtyRateRequest;
  json: boolean;
  help: boolean;
  version: boolean;
}

/**
 * Parses `dirty-rate` arguments; QEMU's checks with QEMU's limits, each naming its option.
 * @throws UsageError before anything runs
 */
export function parseDirtyRateOptions(argv: string[]): DirtyRateOptions {
  const spec: Record<string, { type: 'string' | 'boolean' }> = {
    'calc-time': { type: 'string' }, 'calc-time-unit': { type: 'string' }, 'sample-pages': { type: 'string' }, mode: { type: 'string' }, json: { type: 'boolean' },
  };
  for (const n of GUEST_OPTIONS) spec[n] = { type: 'string' };
  const { values, wants } = parseCommandLine(argv, spec, 0);
  const config = { ...defaultConfig(), vgpu: false };
  const request: DirtyRateRequest = { calcTime: 1, calcTimeUnit: 'second', samplePages: DEFAULT_SAMPLE_PAGES, mode: 'page-sampling' };
  const out = { config, request, json: values.json === true, help: wants === 'help', version: wants === 'version' };
  if (wants) return out;
  for (const n of GUEST_OPTIONS) if (typeof values[n] === 'string') SIM_OPTION.get(n)!.apply(values[n] as string, config);
  checkGuest(config);
  if (typeof values.mode === 'string') request.mode = parseChoice('mode', values.mode, DIRTY_RATE_MODES);
  if (typeof values['calc-time-unit'] === 'string') request.calcTimeUnit = parseChoice('calc-time-unit', values['calc-time-unit'], TIME_UNITS);
  if (typeof values['calc-time'] === 'string') request.calcTime = parseInteger('calc-time', values['calc-time'], 0, Number.MAX_SAFE_INTEGER);
  const ms = calcTimeMs(request);
  if (ms < MIN_CALC_TIME_MS || ms > MAX_CALC_TIME_MS) {
    throw new OptionError('calc-time', `is out of range [${MIN_CALC_TIME_MS}ms, ${MAX_CALC_TIME_MS}ms], got ${ms}ms`);
  }
  if (typeof values['sample-pages'] === 'string') {
    if (request.mode !== 'page-sampling') throw new OptionError('sample-pages', `applies to --mode page-sampling only (QEMU: either sample-pages or ${request.mode})`);
    request.samplePages = parseInteger('sample-pages', values['sample-pages'], MIN_SAMPLE_PAGES, MAX_SAMPLE_PAGES);
  }
  const sampled = Math.floor((config.memory * request.samplePages) / 2 ** 30);
  if (request.mode === 'page-sampling' && sampled > MAX_SAMPLED_PAGES) {
    throw new OptionError('sample-pages', `${request.samplePages} per GiB of ${formatBytes(config.memory)} is ${sampled} pages, more than the ${MAX_SAMPLED_PAGES} the simulator samples (their bytes are real)`);
  }
  // The VM's dirty log follows the mode unless set; QEMU refuses a mode its accelerator lacks.
  if (typeof values['cpu-log'] !== 'string') config.cpuLog = request.mode === 'dirty-ring' ? 'ring' : 'manual';
  else if ((request.mode === 'dirty-ring') !== (config.cpuLog === 'ring')) {
    throw new OptionError('mode', `${request.mode} is not enabled with --cpu-log ${config.cpuLog}, use other method instead`);
  }
  return out;
}

/** The text of a result: query-dirty-rate's fields, then the truth and the error. */
export function formatDirtyRate(r: DirtyRateResult): string {
  const q = r['query-dirty-rate'];
  const g = r.guest;
  const mib = (v: number) => +(v / 2 ** 20).toFixed(1);
  const signed = (v: number, digits: number) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
  const lines = [
    `Dirty rate of a ${formatBytes(g.memory)} guest (${g.workload} workload at ${mib(g.dirtyRate)} MiB/s, ${g.vcpus} vCPUs, seed ${g.seed}), as QEMU's calc-dirty-rate measures it`,
    `  status:          ${q.status}`,
    `  mode:            ${q.mode}${r.sampling ? ` (${q['sample-pages']} sample pages per GiB: ${r.sampling.sampled} pages hashed, ${r.sampling.changed} changed)` : ''}`,
    `  start-time:      ${q['start-time']} s`,
    `  calc-time:       ${q['calc-time']} ${q['calc-time-unit']}${q['calc-time'] === 1 ? '' : 's'}`,
    `  dirty-rate:      ${q['dirty-rate']} MB/s`,
  ];
  if (q['vcpu-dirty-rate']) lines.push(`  vcpu-dirty-rate: ${q['vcpu-dirty-rate'].map((v) => `vCPU ${v.id} ${v['dirty-rate']} MB/s`).join(', ')}`);
  lines.push(
    `  truth:           ${r.truth.pages} distinct pages dirtied in the period, ${r.truth.dirtyRate.toFixed(1)} MB/s (${r.truth.pageWrites} page writes)`,
    `  error:           ${signed(r.error.dirtyRate, 1)} MB/s${r.error.relative === null ? '' : ` (${signed(100 * r.error.relative, 1)} %)`}`,
  );
  return lines.join('\n');
}

/** Runs a measurement on a fresh engine and prints it. */
export async function runDirtyRate(o: DirtyRateOptions, io: Io): Promise<number> {
  const engine = await createEngine();
  const r = measureDirtyRate(engine, o.config, o.request);
  io.out.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatDirtyRate(r)}\n`);
  return 0;
}

/** The help text of `dirty-rate`. */
export function dirtyRateHelp(): string {
  const rows: [string, string][] = [
    ['--mode MODE', `${DIRTY_RATE_MODES.join(' | ')}: hash sampled pages before and after, count each vCPU's dirty ring entries, or read the dirty log (default page-sampling)`],
    ['--calc-time N', `the period, in --calc-time-unit, ${MIN_CALC_TIME_MS}ms to ${MAX_CALC_TIME_MS / 1000}s (default 1)`],
    ['--calc-time-unit UNIT', 'second | millisecond (default second)'],
    ['--sample-pages N', `page-sampling: pages sampled per GiB of RAM, ${MIN_SAMPLE_PAGES} to ${MAX_SAMPLE_PAGES} (default ${DEFAULT_SAMPLE_PAGES})`],
    ...GUEST_OPTIONS.map((n) => (n === 'cpu-log'
      ? ['--cpu-log MODE', 'the VM\'s dirty log: ring for --mode dirty-ring, bitmap or manual otherwise (default: ring for dirty-ring, else manual)'] as [string, string]
      : simOptionRow(n))),
    ['--json', 'print the result as JSON (default off)'],
    ['-h, --help', 'show this help'],
    ['--version', 'print the version of vfio-dirty'],
  ];
  return [
    'Usage: vfio-dirty dirty-rate [options]',
    '',
    'Measures a simulated guest\'s dirty page rate as QEMU\'s calc-dirty-rate does, its writes going',
    'through KVM vCPUs, and prints query-dirty-rate\'s fields with the truth: the distinct pages the',
    'workload dirtied in the period, and the estimate\'s error against it. Time is virtual.',
    '',
    'Options:',
    ...optionLines(rows),
  ].join('\n');
}

/** The `dirty-rate` command of the table in main.ts. */
export const dirtyRateCommand: Command<DirtyRateOptions> = {
  name: 'dirty-rate',
  usage: 'dirty-rate',
  summary: 'estimate a simulated guest\'s dirty page rate as QEMU\'s calc-dirty-rate does, and compare it with the truth',
  help: dirtyRateHelp,
  parse: parseDirtyRateOptions,
  run: runDirtyRate,
};
