// `vfio-dirty simulate` options: the one table of every option, its default and its help, the
// parser of flags and of a JSON config file, and the checks that run before anything starts.
// Every message names the option it is about.
import { readFileSync } from 'node:fs';
import { EXPORT_SUFFIXES, type ExportFormat } from '../export/report_files.js';
import { ACCEL_BUFFERS_GPA, ACCEL_FALLBACKS, ACCEL_JOB } from '../sim/accel_workload.js';
import { PASSTHROUGH_MODES, TRACKING_MODES, type SimConfig } from '../sim/config.js';
import { GuestLayout } from '../sim/guest_layout.js';
import { runTooLong } from '../sim/run_bounds.js';
import { trackingProblem, traceProblem } from '../sim/tracking.js';
import { VGPU_BUFFER, VGPU_RING } from '../sim/vgpu.js';
import { WORKLOAD_KINDS } from '../sim/workload.js';
import { CPU_LOG_MODES } from '../sim/cpu_log.js';
import { parseCommandLine } from './args.js';
import { checkOutputDir, checkOutputFile } from './output_paths.js';
import {
  OptionError,
  parseChoice,
  parseChoiceList,
  parseFraction,
  parseInteger,
  parseRate,
  parseSize,
  parseTime,
  UsageError,
} from './units.js';

/** How the progress of a run is shown. */
export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';
/** The values of --progress. */
export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'bar', 'lines', 'none'];

/** What the simulate command does besides simulating. */
export interface OutputOptions {
  /** Print the JSON summary instead of the text one. */
  json: boolean;
  /** Write the HTML report to this file. */
  report?: string;
  /** Write each round's files to this directory. */
  export?: string;
  /** The files written per round (default bitmap and runs). */
  exportFormats: Set<ExportFormat>;
  /** How progress is shown. */
  progress: ProgressMode;
  /** Write the run as a replayable trace to this file. */
  trace?: string;
  /** Run on the engine of the `vfio-dirty serve` server listening at this socket. */
  server?: string;
}

export interface SimulateOptions {
  config: SimConfig;
  output: OutputOptions;
  /** Show the help, or the version, instead of running. */
  help: boolean;
  version: boolean;
}

/** The export formats, and the default of --export-format. */
export const EXPORT_FORMATS: readonly ExportFormat[] = [...EXPORT_SUFFIXES.keys()];
export const DEFAULT_EXPORT_FORMATS = 'bitmap,runs';

type Apply = (text: string, c: SimConfig) => void;

/** One simulation option: its flag, its default as the user would type it, its help. */
export interface OptionSpec {
  name: string;
  value: string; // the placeholder shown in --help
  default: string;
  help: string;
  apply: Apply;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** The simulation options, in --help order. Defaults are parsed like user input. */
export const SIM_OPTIONS: readonly OptionSpec[] = [
  { name: 'memory', value: 'SIZE', default: '16GiB', help: 'guest RAM (4 KiB pages), at most 1TiB',
    apply: (t, c) => { c.memory = parseSize('memory', t); } },
  { name: 'low-memory', value: 'SIZE', default: '3GiB', help: 'most RAM mapped below the 32-bit PCI hole; the rest is mapped from 4 GiB up (at most 3.5GiB)',
    apply: (t, c) => { c.lowMemory = parseSize('low-memory', t); } },
  { name: 'bandwidth', value: 'RATE', default: '10Gbit/s', help: 'migration link bandwidth',
    apply: (t, c) => { c.bandwidth = parseRate('bandwidth', t); } },
  { name: 'downtime-limit', value: 'TIME', default: '300ms', help: 'switch over when the expected downtime (dirty bytes left / bandwidth) is at most this',
    apply: (t, c) => { c.downtimeLimit = parseTime('downtime-limit', t); } },
  { name: 'max-rounds', value: 'N', default: '30', help: 'give up (not converged) after this many pre-copy rounds, the bulk round included',
    apply: (t, c) => { c.maxRounds = parseInteger('max-rounds', t, 1, 10_000); } },
  { name: 'workload', value: 'KIND', default: 'mixed', help: `guest CPU writes: ${WORKLOAD_KINDS.join(' | ')} (mixed = 70% hotcold, 20% sweep, 10% uniform)`,
    apply: (t, c) => { c.workload = parseChoice('workload', t, WORKLOAD_KINDS); } },
  { name: 'dirty-rate', value: 'RATE', default: '512MiB/s', help: 'guest CPU page writes per second (a page written twice counts twice)',
    apply: (t, c) => { c.dirtyRate = parseRate('dirty-rate', t); } },
  { name: 'hot-fraction', value: 'F', default: '0.1', help: 'hotcold: share of RAM in the hot set',
    apply: (t, c) => { c.hotFraction = parseFraction('hot-fraction', t, 1e-9); } },
  { name: 'hot-weight', value: 'F', default: '0.9', help: 'hotcold: share of writes that go to the hot set',
    apply: (t, c) => { c.hotWeight = parseFraction('hot-weight', t); } },
  { name: 'vgpu-pinned', value: 'SIZE', default: '64MiB', help: 'the vGPU\'s pinned working set, in 2 MiB buffers (0 pins nothing); unless set, at most half of the vGPU region less its 8 MiB ring',
    apply: (t, c) => { c.vgpuPinned = parseSize('vgpu-pinned', t); } },
  { name: 'vgpu-churn', value: 'RATE', default: '32MiB/s', help: 'how fast the vGPU unpins buffers and pins new ones',
    apply: (t, c) => { c.vgpuChurn = parseRate('vgpu-churn', t); } },
  { name: 'vgpu-dma-rate', value: 'RATE', default: '16MiB/s', help: 'what the vGPU writes through dmaRw into its 8 MiB command ring',
    apply: (t, c) => { c.vgpuDmaRate = parseRate('vgpu-dma-rate', t); } },
  { name: 'vgpu-region', value: 'SIZE', default: '1GiB', help: 'guest memory at the top of RAM where the vGPU\'s ring and buffers live; unless set, at most the RAM slot at the top of guest memory',
    apply: (t, c) => { c.vgpuRegion = parseSize('vgpu-region', t); } },
  { name: 'gpu-pt-pages', value: 'N', default: '16', help: 'pages of a guest GPU page table at the top of RAM that the vGPU shadows: it write-protects them through KVM write tracking and its notifier sees every guest store to them (0: none)',
    apply: (t, c) => { c.gpuPtPages = parseInteger('gpu-pt-pages', t, 0, 65536); } },
  { name: 'gpu-pt-rate', value: 'N', default: '0', help: 'page-table entries per second the guest\'s GPU driver writes (8-byte stores through the vCPUs, seen by the vGPU\'s notifier)',
    apply: (t, c) => { c.gpuPtRate = parseInteger('gpu-pt-rate', t, 0, 10_000_000); } },
  { name: 'passthrough', value: 'MODE', default: 'none', help: 'an IOMMU-backed passthrough device: none | unpinned (its driver never pins: under type1 every round is all-dirty) | pinning (its driver pins, so type1 counts only pinned pages)',
    apply: (t, c) => { c.passthrough = parseChoice('passthrough', t, PASSTHROUGH_MODES); } },
  { name: 'passthrough-dma-rate', value: 'RATE', default: '32MiB/s', help: 'what the passthrough device writes into guest RAM by its own DMA, in 64 KiB writes: into its pinned ring with pinning, else into 512 receive buffers spread over RAM',
    apply: (t, c) => { c.passthroughDmaRate = parseRate('passthrough-dma-rate', t); } },
  { name: 'tracking', value: 'MODE', default: 'type1', help: 'who tracks the passthrough device\'s writes: type1 (the container\'s GET_BITMAP) | device (its own DMA logging) | iommufd (an IOMMU with dirty bits); device and iommufd need --passthrough unpinned; without --passthrough, any --tracking implies it',
    apply: (t, c) => { c.tracking = parseChoice('tracking', t, TRACKING_MODES); } },
  { name: 'tracker-ranges', value: 'N', default: '4', help: 'with --tracking device: the ranges the device\'s tracker holds (it merges more into these; the VMM asks for two: RAM below and above 4 GiB)',
    apply: (t, c) => { c.trackerRanges = parseInteger('tracker-ranges', t, 1, 256); } },
  { name: 'tracking-page-size', value: 'SIZE', default: '4KiB', help: 'the page size dirty tracking reports in, a power of two from 4KiB to 2MiB (type1: 4KiB only); each reported page marks all its 4 KiB guest pages',
    apply: (t, c) => { c.trackingPageSize = parseSize('tracking-page-size', t); } },
  { name: 'seed', value: 'N', default: '1', help: 'seed of every random choice: the same seed gives the same run',
    apply: (t, c) => { c.seed = parseInteger('seed', t, 0, Number.MAX_SAFE_INTEGER); } },
  { name: 'step', value: 'TIME', default: '100ms', help: 'virtual time step of guest and device activity inside a round',
    apply: (t, c) => { c.step = parseTime('step', t); } },
  { name: 'heatmap-columns', value: 'N', default: '512', help: 'memory cells per round in the report\'s heat map',
    apply: (t, c) => { c.heatmapColumns = parseInteger('heatmap-columns', t, 8, 4096); } },
  { name: 'zero-fraction', value: 'F', default: '0.25', help: 'share of guest RAM that is zero when migration starts: the bulk round sends each such page as a 9-byte header (QEMU\'s duplicate pages)',
    apply: (t, c) => { c.zeroFraction = parseFraction('zero-fraction', t); } },
  { name: 'vcpus', value: 'N', default: '4', help: 'the guest\'s vCPUs (--dirty-limit caps each one)',
    apply: (t, c) => { c.vcpus = parseInteger('vcpus', t, 1, 1024); } },
  { name: 'cpu-log', value: 'MODE', default: 'manual', help: 'how the VMM reads KVM\'s dirty log of the guest\'s writes: bitmap (KVM_GET_DIRTY_LOG) | manual (GET, then KVM_CLEAR_DIRTY_LOG in chunks, as QEMU with manual protect) | ring (per-vCPU dirty rings)',
    apply: (t, c) => { c.cpuLog = parseChoice('cpu-log', t, CPU_LOG_MODES); } },
  { name: 'dirty-ring-size', value: 'N', default: '4096', help: 'with --cpu-log ring: entries per vCPU ring, a power of two from 256 to 65536',
    apply: (t, c) => { c.dirtyRingSize = parseInteger('dirty-ring-size', t, 256, 65536); } },
  { name: 'clear-bitmap-shift', value: 'N', default: '18', help: 'with --cpu-log manual: KVM_CLEAR_DIRTY_LOG clears 2^N pages at a time (6 to 31; 18 is 1 GiB)',
    apply: (t, c) => { c.clearBitmapShift = parseInteger('clear-bitmap-shift', t, 6, 31); } },
  { name: 'cpu-throttle-initial', value: 'PCT', default: '20', help: 'auto-converge: the first vCPU throttle, percent',
    apply: (t, c) => { c.throttle.initial = parseInteger('cpu-throttle-initial', t, 1, 99); } },
  { name: 'cpu-throttle-increment', value: 'PCT', default: '10', help: 'auto-converge: how much each later step raises the throttle, percent',
    apply: (t, c) => { c.throttle.increment = parseInteger('cpu-throttle-increment', t, 1, 99); } },
  { name: 'max-cpu-throttle', value: 'PCT', default: '99', help: 'auto-converge: the highest throttle, percent',
    apply: (t, c) => { c.throttle.max = parseInteger('max-cpu-throttle', t, 1, 99); } },
  { name: 'throttle-trigger-threshold', value: 'PCT', default: '50', help: 'auto-converge and dirty-limit act when the bytes dirtied in a sync period pass this percentage of the bytes sent in it, twice',
    apply: (t, c) => { c.throttle.triggerThreshold = parseInteger('throttle-trigger-threshold', t, 1, 100); } },
  { name: 'vcpu-dirty-limit', value: 'RATE', default: '1MiB/s', help: 'dirty-limit: the dirty page rate each vCPU is held to',
    apply: (t, c) => { c.throttle.vcpuDirtyLimit = parseRate('vcpu-dirty-limit', t); } },
  { name: 'device-precopy', value: 'SIZE', default: '0', help: 'a VFIO migration v2 device\'s initial pre-copy data (initial_bytes), sent in the bulk round',
    apply: (t, c) => { c.deviceState.precopyInitial = parseSize('device-precopy', t); } },
  { name: 'device-dirty-rate', value: 'RATE', default: '0', help: 'how fast the device\'s pre-copy dirty_bytes grows; each round sends what grew since the last',
    apply: (t, c) => { c.deviceState.precopyDirtyRate = parseRate('device-dirty-rate', t); } },
  { name: 'device-stop-copy', value: 'SIZE', default: '0', help: 'the device\'s stop_copy_length: sent with the guest stopped, and counted by the switch-over rule',
    apply: (t, c) => { c.deviceState.stopCopy = parseSize('device-stop-copy', t); } },
  { name: 'accel-rate', value: 'RATE', default: '64MiB/s', help: 'with --accelerator: result bytes its jobs write by PASID (64 KiB a job)',
    apply: (t, c) => { c.accelerator.rate = parseRate('accel-rate', t); } },
  { name: 'accel-buffers', value: 'SIZE', default: '16MiB', help: 'with --accelerator: the result buffers, in guest RAM from 32 MiB, written in turn',
    apply: (t, c) => { c.accelerator.buffers = parseSize('accel-buffers', t); } },
  { name: 'accelerator-fallback', value: 'MODE', default: 'none', help: `with --accelerator: ${ACCEL_FALLBACKS.join(' | ')}; mark-buffers has the VMM mark the queue's buffers dirty before each harvest`,
    apply: (t, c) => { c.accelerator.fallback = parseChoice('accelerator-fallback', t, ACCEL_FALLBACKS); } },
  { name: 'postcopy-after', value: 'N', default: '0', help: 'compare with postcopy: after N pre-copy rounds (the bulk round included) switch to postcopy instead of sending another round; 0 never',
    apply: (t, c) => { c.postcopyAfter = parseInteger('postcopy-after', t, 0, 10_000); } },
  { name: 'postcopy-rtt', value: 'TIME', default: '0.1ms', help: 'postcopy: round trip of a page request from the destination (a fault waits this and the page\'s transfer)',
    apply: (t, c) => { c.postcopyRtt = parseTime('postcopy-rtt', t); } },
];

/** The default configuration: every option at its documented default. */
export function defaultConfig(): SimConfig {
  const c = {
    vgpu: true,
    throttle: { autoConverge: false, dirtyLimit: false, tailslow: false },
    deviceState: {},
    accelerator: { enabled: false },
  } as unknown as SimConfig;
  for (const o of SIM_OPTIONS) o.apply(o.default, c);
  return c;
}

/** The vGPU region's lower bound: its 8 MiB ring and four 2 MiB buffers to churn among. */
const VGPU_REGION_MIN = 16 * MiB;

/**
 * Defaults that follow --memory and --low-memory, for the options the user did not set (`set`):
 * the vGPU region is at most the top RAM slot (so `--memory 16MiB` runs), and its pinned working
 * set at most half of the region less the ring.
 */
function deriveDefaults(c: SimConfig, set: ReadonlySet<string>): void {
  const down = (v: number) => Math.max(0, Math.floor(v / VGPU_BUFFER) * VGPU_BUFFER);
  if (!set.has('vgpu-region')) c.vgpuRegion = Math.min(c.vgpuRegion, down(topSlot(c).size));
  if (!set.has('vgpu-pinned')) c.vgpuPinned = Math.min(c.vgpuPinned, down((c.vgpuRegion - VGPU_RING) / 2));
}

function topSlot(c: SimConfig) {
  return new GuestLayout(c.memory, c.lowMemory).slots.at(-1)!;
}

/**
 * Cross-option checks; the first failure throws an OptionError naming an option. `set` holds the
 * options the user gave (flags or the config file): once the memory is known good, the defaults
 * that follow it are derived for the others, and a message about a value the user did not give
 * says how it was derived. Without `set` every value counts as given.
 */
export function checkConfig(c: SimConfig, set?: ReadonlySet<string>): void {
  const given = (name: string) => set === undefined || set.has(name);
  checkMemory(c);
  if (set) deriveDefaults(c, set);
  if (!(c.bandwidth > 0)) throw new OptionError('bandwidth', 'must be more than 0');
  if (!(c.downtimeLimit > 0)) throw new OptionError('downtime-limit', 'must be more than 0');
  checkGuest(c);
  if (c.vgpu) checkVgpu(c, given);
  // --tracking is about the passthrough device: naming any mode brings one, so that the three
  // mechanisms are compared on the same device.
  if (set?.has('tracking') && !set.has('passthrough') && c.passthrough === 'none') c.passthrough = 'unpinned';
  const tracking = trackingProblem(c);
  if (tracking) throw new OptionError(tracking.option, tracking.message);
  if (c.passthroughDmaRate > 4 * GiB) throw new OptionError('passthrough-dma-rate', 'must be at most 4GiB/s');
  if (c.throttle.autoConverge && c.throttle.dirtyLimit) throw new OptionError('dirty-limit', 'cannot be used with --auto-converge (QEMU refuses both)');
  if (c.throttle.dirtyLimit && !(c.throttle.vcpuDirtyLimit > 0)) throw new OptionError('vcpu-dirty-limit', 'must be more than 0');
  if (c.accelerator.enabled) checkAccel(c);
  if (c.deviceState.precopyDirtyRate > 64 * GiB) throw new OptionError('device-dirty-rate', 'must be at most 64GiB/s');
  const tooLong = runTooLong(c);
  if (tooLong) throw new UsageError(tooLong);
}

/** The guest's RAM: --memory and --low-memory. */
function checkMemory(c: SimConfig): void {
  const page = (name: string, v: number) => {
    if (v % 4096) throw new OptionError(name, `must be a multiple of 4 KiB, got ${v} bytes`);
  };
  if (c.memory < 16 * MiB || c.memory > 1024 * GiB) throw new OptionError('memory', 'must be between 16MiB and 1TiB');
  page('memory', c.memory);
  if (c.lowMemory <= 0 || c.lowMemory > 3.5 * GiB) throw new OptionError('low-memory', 'must be more than 0 and at most 3.5GiB');
  page('low-memory', c.lowMemory);
}

/**
 * The checks of the guest's own options (RAM, step, its write rate, its dirty ring), shared by
 * `simulate` and `dirty-rate`.
 */
export function checkGuest(c: SimConfig): void {
  checkMemory(c);
  if (!(c.step >= 1e-3 && c.step <= 10)) throw new OptionError('step', 'must be between 1ms and 10s');
  if (c.dirtyRate > 64 * GiB) throw new OptionError('dirty-rate', 'must be at most 64GiB/s');
  if (c.dirtyRingSize & (c.dirtyRingSize - 1)) throw new OptionError('dirty-ring-size', `must be a power of two, got ${c.dirtyRingSize}`);
}

function checkAccel(c: SimConfig): void {
  const a = c.accelerator;
  if (!(a.buffers > 0) || a.buffers % ACCEL_JOB) throw new OptionError('accel-buffers', 'must be a positive multiple of 64KiB');
  const low = Math.min(c.memory, c.lowMemory);
  if (ACCEL_BUFFERS_GPA + a.buffers > low) {
    throw new OptionError('accel-buffers', `must end in low RAM: 32 MiB + ${a.buffers / MiB} MiB is past its ${low / MiB} MiB (raise --memory or --low-memory)`);
  }
  if (a.rate > 4 * GiB) throw new OptionError('accel-rate', 'must be at most 4GiB/s');
}

function checkVgpu(c: SimConfig, given: (name: string) => boolean): void {
  const top = topSlot(c).size;
  if (!given('vgpu-region') && c.vgpuRegion < VGPU_REGION_MIN) {
    const by = given('low-memory') && !given('memory') ? 'low-memory' : 'memory';
    throw new OptionError(by, `leaves ${top / MiB} MiB in the RAM slot at the top of guest memory, where the vGPU needs a region of at least 16MiB; ` +
      'change --memory or --low-memory, or run with --no-vgpu');
  }
  if (c.vgpuRegion < VGPU_REGION_MIN || c.vgpuRegion > c.memory) throw new OptionError('vgpu-region', 'must be at least 16MiB and at most --memory');
  if (c.vgpuRegion % VGPU_BUFFER) throw new OptionError('vgpu-region', 'must be a multiple of 2MiB');
  if (c.vgpuRegion > top) {
    throw new OptionError('vgpu-region', `must fit in the RAM slot at the top of guest memory (${top / MiB} MiB with these --memory and --low-memory)`);
  }
  if (c.gpuPtPages * 4096 > c.vgpuRegion) throw new OptionError('gpu-pt-pages', `must fit in the vGPU region (${c.vgpuRegion / 4096} pages)`);
  if (c.vgpuPinned % VGPU_BUFFER) throw new OptionError('vgpu-pinned', 'must be a multiple of 2MiB (the vGPU pins 2 MiB buffers)');
  if (c.vgpuPinned > (c.vgpuRegion - VGPU_RING) / 2) {
    const region = given('vgpu-region') ? '--vgpu-region'
      : c.vgpuRegion === GiB ? 'the vGPU region (the default 1GiB)'
      : `the vGPU region (${c.vgpuRegion / MiB} MiB: the default 1GiB capped to the RAM slot at the top of guest memory)`;
    throw new OptionError('vgpu-pinned', `must be at most half of ${region} less its 8 MiB ring, so that buffers can churn`);
  }
  if (c.vgpuChurn > 64 * GiB) throw new OptionError('vgpu-churn', 'must be at most 64GiB/s');
  if (c.vgpuDmaRate > 4 * GiB) throw new OptionError('vgpu-dma-rate', 'must be at most 4GiB/s');
}

/** Reads a JSON config file: an object whose keys are long option names. */
function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new OptionError('config', `cannot read ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new OptionError('config', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new OptionError('config', `${path} must hold a JSON object of options`);
  }
  return data as Record<string, unknown>;
}

/** The options besides the simulation's: booleans and output paths, each with how it is set. */
const OUTPUT_OPTIONS: ReadonlyMap<string, (v: string | boolean, o: OutputOptions, c: SimConfig) => void> = new Map([
  ['vgpu', (v, _o, c) => { c.vgpu = v as boolean; }],
  ['auto-converge', (v, _o, c) => { c.throttle.autoConverge = v as boolean; }],
  ['cpu-throttle-tailslow', (v, _o, c) => { c.throttle.tailslow = v as boolean; }],
  ['dirty-limit', (v, _o, c) => { c.throttle.dirtyLimit = v as boolean; }],
  ['accelerator', (v, _o, c) => { c.accelerator.enabled = v as boolean; }],
  ['json', (v, o) => { o.json = v as boolean; }],
  ['report', (v, o) => { o.report = v as string; }],
  ['export', (v, o) => { o.export = v as string; }],
  ['trace', (v, o) => { o.trace = v as string; }],
  ['server', (v, o) => { o.server = v as string; }],
  ['export-format', (v, o) => { o.exportFormats = parseChoiceList('export-format', v as string, EXPORT_FORMATS); }],
  ['progress', (v, o) => { o.progress = parseChoice('progress', v as string, PROGRESS_MODES); }],
]);
const BOOLEAN_OPTIONS = new Set(['vgpu', 'json', 'auto-converge', 'cpu-throttle-tailslow', 'dirty-limit', 'accelerator']);
/** The simulation options by name. */
export const SIM_OPTION: ReadonlyMap<string, OptionSpec> = new Map(SIM_OPTIONS.map((o) => [o.name, o]));

/**
 * Parses `simulate` arguments: defaults, then the config file (--config), then flags; derives
 * the defaults that follow --memory; checks every value and the output paths.
 * @throws UsageError (an OptionError naming the option, where there is one) before anything runs
 */
export function parseSimulateOptions(argv: string[]): SimulateOptions {
  const spec: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, 'no-vgpu': { type: 'boolean' } };
  for (const name of OUTPUT_OPTIONS.keys()) spec[name] = { type: BOOLEAN_OPTIONS.has(name) ? 'boolean' : 'string' };
  for (const o of SIM_OPTIONS) spec[o.name] = { type: 'string' };
  const { values, wants } = parseCommandLine(argv, spec, 0);
  const config = defaultConfig();
  const output: OutputOptions = { json: false, progress: 'auto', exportFormats: parseChoiceList('export-format', DEFAULT_EXPORT_FORMATS, EXPORT_FORMATS) };
  if (wants) return { config, output, help: wants === 'help', version: wants === 'version' };
  const set = new Set<string>();
  const apply = (name: string, v: unknown, from: string) => {
    const out = OUTPUT_OPTIONS.get(name);
    const sim = SIM_OPTION.get(name);
    if (!out && !sim) throw new OptionError(name, `unknown option${from}`);
    if (BOOLEAN_OPTIONS.has(name)) {
      if (typeof v !== 'boolean') throw new OptionError(name, `expected true or false${from}, got ${JSON.stringify(v)}`);
    } else if (typeof v !== 'string' && typeof v !== 'number') {
      throw new OptionError(name, `expected a string or a number${from}, got ${JSON.stringify(v)}`);
    }
    if (out) out(typeof v === 'number' ? String(v) : v, output, config);
    else sim!.apply(String(v), config);
    set.add(name);
  };
  if (typeof values.config === 'string') {
    for (const [k, v] of Object.entries(readConfigFile(values.config))) {
      if (k === 'config' || k === 'help' || k === 'version') throw new OptionError(k, 'cannot be set in a config file');
      apply(k, v, ` in ${values.config}`);
    }
  }
  if (values.vgpu && values['no-vgpu']) throw new OptionError('vgpu', 'cannot be given together with --no-vgpu');
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || k === 'config') continue;
    if (k === 'no-vgpu') apply('vgpu', !v, '');
    else apply(k, v, '');
  }
  checkConfig(config, set);
  if (output.report !== undefined) checkOutputFile('report', output.report);
  if (output.trace !== undefined && traceProblem(config)) throw new OptionError('trace', traceProblem(config)!.replace(/^--trace /, ''));
  if (output.trace !== undefined) checkOutputFile('trace', output.trace);
  if (output.export !== undefined) checkOutputDir('export', output.export);
  else if (set.has('export-format')) throw new OptionError('export-format', 'needs --export DIR');
  return { config, output, help: false, version: false };
}

/** The help text of `simulate`: every option with its default. */
export function simulateHelp(): string {
  const rows: [string, string][] = [
    ['--config FILE', 'read options from a JSON object whose keys are the long option names (e.g. {"memory": "8GiB", "vgpu": false}); flags on the command line win'],
    ...SIM_OPTIONS.map((o) => simOptionRow(o.name)),
    ['--no-vgpu', 'run without the emulated vGPU (default: with it)'],
    ['--auto-converge', 'QEMU\'s auto-converge: throttle the vCPUs when the guest dirties memory faster than it is sent (default off)'],
    ['--cpu-throttle-tailslow', 'auto-converge: raise the throttle by less than the increment near the rate that would converge (default off)'],
    ['--accelerator', 'a guest process shares an SVA accelerator whose jobs write results into guest RAM by PASID, which no dirty record sees (default off)'],
    ['--dirty-limit', 'QEMU\'s dirty-limit: cap each vCPU\'s dirty page rate at --vcpu-dirty-limit on the same trigger (default off)'],
    ['--json', 'print the summary as JSON (schema in docs/simulate.md) instead of text (default off)'],
    ['--report FILE', 'write a self-contained HTML report: heat map of dirty pages per round, convergence chart (default none)'],
    ['--export DIR', 'write each round\'s files to DIR (created if needed): round-NNN.bitmap (kernel layout), round-NNN.runs.json, round-NNN.runs.bin, as --export-format says (default none)'],
    ['--export-format LIST', `the files --export writes: all, or a comma-separated list of ${EXPORT_FORMATS.join(', ')} (formats in docs/formats.md) (default ${DEFAULT_EXPORT_FORMATS})`],
    ['--trace FILE', 'write the run as a replayable trace (JSON Lines, docs/simulate.md): vfio-dirty replay FILE reproduces every harvest, byte for byte (default none)'],
    ['--server PATH', 'run on the engine of a `vfio-dirty serve` server listening at the socket PATH, through its protocol, instead of an engine in this process (default none)'],
    ['--progress MODE', 'auto | bar | lines | none; auto draws a bar on a terminal and plain lines otherwise (default auto)'],
    ['-h, --help', 'show this help'],
    ['--version', 'print the version of vfio-dirty'],
  ];
  return [
    'Usage: vfio-dirty simulate [options]',
    '',
    'Runs a pre-copy live migration of a guest whose device DMA is tracked by the engine: guest CPU',
    'writes go through KVM vCPUs, the vGPU pins and writes through dmaRw, and every round harvests',
    'KVM\'s dirty log and the container\'s GET_BITMAP. Time is virtual; the engine\'s own cost is real.',
    '',
    'Units: sizes B, KiB, MiB, GiB, TiB (bare numbers are MiB); rates MiB/s, GiB/s, MB/s, GB/s,',
    'Mbit/s, Gbit/s (bare numbers are MiB/s); times ms or s (bare numbers are ms).',
    '',
    'Options:',
    ...optionLines(rows),
  ].join('\n');
}

/** Help rows (flag, text) as aligned lines of at most 100 characters. */
export function optionLines(rows: readonly [string, string][]): string[] {
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  return rows.flatMap(([a, b]) => wrap(b, 100 - width - 2).map((l, i) => `  ${(i === 0 ? a : '').padEnd(width)}${l}`));
}

/** The help row of simulation option `name` (for commands that share it). */
export function simOptionRow(name: string): [string, string] {
  const o = SIM_OPTION.get(name)!;
  return [`--${o.name} ${o.value}`, `${o.help} (default ${o.default})`];
}

/** Splits `text` into lines of at most `width` characters at spaces. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  // "(default X)" stays on one line: it is what a reader looks for.
  for (const word of text.replace(/\(default (\S+)\)$/, '(default\u00a0$1)').split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  out.push(line);
  return out.map((l) => l.replace('\u00a0', ' '));
}
