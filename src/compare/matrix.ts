// The matrix of `vfio-dirty compare`: the options compare adds to simulate's, the base
// configuration (every simulate option, parsed and checked by simulate's own parser), and the
// cells: strategies x values of one swept option x seeds. Each cell is the simulate command line
// that reproduces it (the base arguments, then the cell's own), parsed by that same parser, so a
// cell is exactly `vfio-dirty simulate` with its arguments.
import { availableParallelism } from 'node:os';
import { parseSimulateOptions, PROGRESS_MODES, SIM_OPTIONS, type ProgressMode } from '../cli/options.js';
import { checkOutputFile } from '../cli/output_paths.js';
import { OptionError, parseChoice, parseChoiceList, parseInteger, UsageError } from '../cli/units.js';
import { TRACKING_MODES, type SimConfig, type TrackingMode } from '../sim/config.js';

/** What the cells are made of; the JSON output carries it as is. */
export interface MatrixDefinition {
  /** The simulate arguments every cell starts from, as given. */
  base: string[];
  /** The tracking strategies compared (--strategies), or null. */
  strategies: TrackingMode[] | null;
  /** The simulate option swept (--sweep) and its values as given, or null. */
  sweep: { option: string; values: string[] } | null;
  /** The seeds each combination runs with. */
  seeds: number[];
}

/** One run of the matrix. */
export interface CompareCell {
  /** 1-based, in matrix order: strategies, then swept values, then seeds. */
  index: number;
  /** What sets it apart: `device dirty-rate=1GiB/s seed 2`. */
  label: string;
  tracking: TrackingMode | null;
  /** The swept option's value, as given. */
  value: string | null;
  seed: number;
  /** `vfio-dirty simulate` with these arguments runs this cell alone, with the same figures. */
  simulateArgs: string[];
  config: SimConfig;
}

/** What `compare` does besides running the cells. */
export interface CompareOutput {
  json: boolean;
  report?: string;
  progress: ProgressMode;
  /** Worker threads; 0 runs the cells one after another on the main thread. */
  jobs: number;
}

export interface CompareOptions {
  matrix: MatrixDefinition;
  cells: CompareCell[];
  output: CompareOutput;
  help: boolean;
  version: boolean;
}

/** The most cells one comparison runs. */
export const MAX_CELLS = 1000;

/** compare's own options (the rest go to simulate's parser), and whether each takes a value. */
const OWN: ReadonlyMap<string, boolean> = new Map([
  ['strategies', true], ['sweep', true], ['seeds', true], ['seed-list', true], ['jobs', true],
  ['json', false], ['report', true], ['progress', true],
]);
/** simulate's outputs that compare takes (for the whole matrix); it refuses the others. */
const OUTPUTS_TAKEN = new Set(['json', 'report', 'progress', 'exportFormats']);
/** simulate's outputs of one run, refused by name before simulate's parser sees them. */
const PER_RUN = ['export', 'export-format', 'trace'];
const SIMULATE_ONLY = 'is simulate\'s alone: compare writes --json and --report for the whole matrix; rerun a cell with simulate for it';

/**
 * Takes compare's own options out of `argv`; what is left is simulate's.
 * @throws OptionError for a compare option without its value, or a per-run output option
 */
function splitArgs(argv: readonly string[]): { own: Map<string, string | true>; base: string[] } {
  const own = new Map<string, string | true>();
  const base: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([^=]+)(?:=([\s\S]*))?$/.exec(argv[i]);
    const name = m?.[1];
    if (name !== undefined && PER_RUN.includes(name)) {
      throw new OptionError(name, SIMULATE_ONLY);
    }
    if (name === undefined || !OWN.has(name)) {
      base.push(argv[i]);
      continue;
    }
    if (!OWN.get(name)) {
      if (m![2] !== undefined) throw new OptionError(name, 'takes no value');
      own.set(name, true);
      continue;
    }
    const value = m![2] ?? argv[++i];
    if (value === undefined) throw new OptionError(name, 'needs a value (see --help)');
    own.set(name, value);
  }
  return { own, base };
}

const SWEEPABLE = new Set(SIM_OPTIONS.map((o) => o.name));

/** --sweep NAME=V1,V2,...: an option of simulate's table and its values. */
function parseSweep(text: string, strategies: boolean): { option: string; values: string[] } {
  const m = /^([^=]+)=([\s\S]*)$/.exec(text);
  if (!m) throw new OptionError('sweep', `expected NAME=V1,V2,... (e.g. dirty-rate=256MiB/s,1GiB/s), got ${JSON.stringify(text)}`);
  const option = m[1].trim().replace(/^--/, '');
  if (option === 'seed') throw new OptionError('sweep', 'seeds are swept with --seeds N or --seed-list');
  if (!SWEEPABLE.has(option)) throw new OptionError('sweep', `${JSON.stringify(option)} is not an option of simulate (see vfio-dirty simulate --help)`);
  if (option === 'tracking' && strategies) throw new OptionError('sweep', 'tracking is what --strategies sweeps: give one of them');
  const values = m[2].split(',').map((v) => v.trim());
  for (const [i, v] of values.entries()) {
    if (v === '') throw new OptionError('sweep', `an empty value in ${JSON.stringify(m[2])}`);
    if (values.indexOf(v) !== i) throw new OptionError('sweep', `${JSON.stringify(v)} is given twice`);
  }
  return { option, values };
}

/** The seeds: --seeds N counts up from the base seed, --seed-list names them. */
function parseSeeds(own: Map<string, string | true>, baseSeed: number): number[] {
  const count = own.get('seeds');
  const list = own.get('seed-list');
  if (count !== undefined && list !== undefined) throw new OptionError('seed-list', 'cannot be given together with --seeds');
  if (typeof list === 'string') {
    const seeds = list.split(',').map((w) => parseInteger('seed-list', w.trim(), 0, Number.MAX_SAFE_INTEGER));
    const twice = seeds.find((s, i) => seeds.indexOf(s) !== i);
    if (twice !== undefined) throw new OptionError('seed-list', `seed ${twice} is given twice`);
    return seeds;
  }
  const n = typeof count === 'string' ? parseInteger('seeds', count, 1, MAX_CELLS) : 1;
  if (baseSeed + n - 1 > Number.MAX_SAFE_INTEGER) throw new OptionError('seeds', `counts past the largest seed from --seed ${baseSeed}`);
  return Array.from({ length: n }, (_, i) => baseSeed + i);
}

/**
 * Parses `compare` arguments: compare's own options, then every other argument as simulate's
 * (its parser, its checks, its config file), then each cell's command line through that parser.
 * @throws UsageError naming the option, and the cell where the cell's value is refused
 */
export function parseCompareOptions(argv: string[]): CompareOptions {
  const { own, base } = splitArgs(argv);
  const sim = parseSimulateOptions(base);
  const output: CompareOutput = { json: sim.output.json, report: sim.output.report, progress: sim.output.progress, jobs: availableParallelism() };
  const matrix: MatrixDefinition = { base, strategies: null, sweep: null, seeds: [] };
  if (sim.help || sim.version) return { matrix, cells: [], output, help: sim.help, version: sim.version };
  // Any other output of simulate (from a config file, or one simulate gains) is refused by name.
  for (const [key, value] of Object.entries(sim.output)) {
    if (!OUTPUTS_TAKEN.has(key) && value !== undefined) throw new OptionError(key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), SIMULATE_ONLY);
  }
  const strategies = own.get('strategies');
  if (typeof strategies === 'string') matrix.strategies = [...parseChoiceList('strategies', strategies, TRACKING_MODES)];
  const sweep = own.get('sweep');
  if (typeof sweep === 'string') matrix.sweep = parseSweep(sweep, matrix.strategies !== null);
  matrix.seeds = parseSeeds(own, sim.config.seed);
  const jobs = own.get('jobs');
  if (typeof jobs === 'string') output.jobs = parseInteger('jobs', jobs, 0, 256);
  if (own.has('json')) output.json = true;
  const progress = own.get('progress');
  if (typeof progress === 'string') output.progress = parseChoice('progress', progress, PROGRESS_MODES);
  const report = own.get('report');
  if (typeof report === 'string') {
    checkOutputFile('report', report);
    output.report = report;
  }
  const total = (matrix.strategies?.length ?? 1) * (matrix.sweep?.values.length ?? 1) * matrix.seeds.length;
  if (total > MAX_CELLS) throw new UsageError(`the matrix has ${total} cells; at most ${MAX_CELLS}`);
  return { matrix, cells: cellsOf(matrix), output, help: false, version: false };
}

/**
 * The cells of `matrix`, each parsed from its simulate command line.
 * @throws UsageError `cell N (label): --option: reason` where simulate's parser refuses a cell
 */
export function cellsOf(matrix: MatrixDefinition): CompareCell[] {
  const cells: CompareCell[] = [];
  for (const tracking of matrix.strategies ?? [null]) {
    for (const value of matrix.sweep?.values ?? [null]) {
      for (const seed of matrix.seeds) {
        const own = [
          ...(tracking === null ? [] : [`--tracking=${tracking}`]),
          ...(value === null ? [] : [`--${matrix.sweep!.option}=${value}`]),
          `--seed=${seed}`,
        ];
        const index = cells.length + 1;
        const label = [tracking, value === null ? null : `${matrix.sweep!.option}=${value}`, `seed ${seed}`].filter((p) => p !== null).join(' ');
        const simulateArgs = [...matrix.base, ...own];
        let config: SimConfig;
        try {
          config = parseSimulateOptions(simulateArgs).config;
        } catch (e) {
          if (e instanceof UsageError) throw new UsageError(`cell ${index} (${label}): ${e.message}`);
          throw e;
        }
        cells.push({ index, label, tracking, value, seed, simulateArgs, config });
      }
    }
  }
  return cells;
}
