// The pre-copy live-migration simulator. A guest's RAM is mapped into a VFIO container the way a
// VMM maps it (migration_vm.ts); round 0 sends all RAM while tracking runs; every later round
// harvests the container with GET_BITMAP semantics merged with the CPU dirty log, and either
// switches over (expected downtime within the limit), sends the dirty pages (virtual time passes
// at the link bandwidth while guest and devices keep writing), or gives up at the round limit.
// The run returns data (a summary and a heat map); each harvest's report is lent to a hook, and
// what is written to files is the caller's business (src/cli/simulate.ts, src/export).
import { performance } from 'node:perf_hooks';
import type { DirtyReport } from '../export/dirty_report.js';
import { countRuns } from '../export/run_batches.js';
import type { SimConfig } from './config.js';
import { decide, dirtyRate, expectedDowntime, roundDuration, throughputMbps, type ConvergenceRule, type Decision } from './convergence.js';
import { summarize } from './figures.js';
import { GUEST_PAGE, type GuestLayout } from './guest_layout.js';
import type { Heatmap } from './html_report.js';
import { MigrationVm } from './migration_vm.js';
import { cpuLogSummary } from './cpu_log_summary.js';
import type { CpuLogSync } from './cpu_log.js';
import { runTooLong } from './run_bounds.js';
import type { SimEngine } from './sim_engine.js';
import type { PostcopySummary, RoundRecord, SimSummary } from './summary.js';
import { Throttle } from './throttle.js';
import { TraceRecorder, type TraceSink } from './trace_recorder.js';
import { DeviceState, ramWireBytes, zeroPagesOf } from './transfer.js';

export type { SimContainer, SimEngine, SimGroup, SimProcess } from './sim_engine.js';

/** Hooks of a run: progress, and each harvest's report. */
export interface SimHooks {
  progress?: {
    roundStart(r: RoundRecord): void;
    advance(fraction: number): void;
    roundEnd(r: RoundRecord): void;
    finish(): void;
  };
  /**
   * Called with each harvest's merged report (round 1 on), before the round goes on. The report
   * is lent: it is disposed when the hook returns.
   */
  onHarvest?(round: number, report: DirtyReport): void;
  /** Records the run as a replayable trace (trace.ts), one line a call. */
  trace?: TraceSink;
}

/** What a run returns: the summary and the heat map for the HTML report. */
export interface SimResult {
  summary: SimSummary;
  heatmap: Heatmap;
}

/** One harvest's measurements, for its round record and the summary. */
interface HarvestFacts {
  devicePages: number;
  dirtyPages: number;
  runs: number;
  ms: number;
  cells: Uint8Array;
  accel: { written: number; unseen: number } | null;
  /** The dirty runs, kept when this harvest may switch to postcopy. */
  dirtyRuns: Uint32Array | null;
  cpu: CpuLogSync;
}

/**
 * Runs one simulated pre-copy migration on `engine` (a fresh engine: the run maps 0 .. RAM).
 * @throws RangeError when the configuration would run too long (run_bounds.ts), before anything
 *   is set up; what the engine or a hook throws (the VM is torn down first)
 */
export function simulate(engine: SimEngine, config: SimConfig, hooks: SimHooks = {}): SimResult {
  const tooLong = runTooLong(config);
  if (tooLong) throw new RangeError(tooLong);
  const wall0 = performance.now();
  const vm = new MigrationVm(engine, config, hooks.trace ? new TraceRecorder(hooks.trace) : undefined);
  const rule: ConvergenceRule = { bandwidth: config.bandwidth, downtimeLimit: config.downtimeLimit, maxRounds: config.maxRounds };
  const throttle = new Throttle(config.throttle, config.vcpus, config.dirtyRate);
  const device = new DeviceState(config.deviceState);
  const progress = hooks.progress;
  const columns = config.heatmapColumns;
  const pagesPerCell = Math.ceil(vm.layout.ramPages / columns);
  const rounds: RoundRecord[] = [bulkRound(vm.layout, config)];
  const heatRows: Heatmap['rows'] = [];
  const harvestMs: number[] = [];
  const cpuSyncs: CpuLogSync[] = [];
  let peakHeap = engine.memoryInUse();
  let converged = false;
  let postcopy: PostcopySummary | null = null;
  try {
    vm.start();
    const send = (rec: RoundRecord) => {
      progress?.roundStart(rec);
      vm.guestScale = throttle.scale;
      if (rec.phase === 'precopy' || rec.phase === 'bulk') vm.run(rec.startS, rec.startS + rec.durationS, progress?.advance.bind(progress));
      progress?.roundEnd(rec);
    };
    send(rounds[0]);
    for (let round = 1; ; round++) {
      const mayPostcopy = config.postcopyAfter > 0 && round >= config.postcopyAfter;
      const h = harvest(vm, round, columns, pagesPerCell, hooks, mayPostcopy);
      harvestMs.push(h.ms);
      cpuSyncs.push(h.cpu);
      peakHeap = Math.max(peakHeap, engine.memoryInUse());
      heatRows.push({ round, cells: h.cells });
      const prev = rounds[rounds.length - 1];
      const nowS = prev.startS + prev.durationS;
      // The sync: the device's pre-copy data, then the throttle rule, then the switch-over rule.
      const devicePrecopy = device.sync(nowS);
      throttle.sync(nowS, h.dirtyPages, prev.transferredBytes);
      const pendingBytes = h.dirtyPages * GUEST_PAGE + devicePrecopy + config.deviceState.stopCopy;
      const rule0 = decide(rule, round, pendingBytes);
      const decision = rule0 === 'continue' && mayPostcopy ? 'postcopy' : rule0;
      const rec = roundRecord(round, nowS, round === 1 ? 0 : prev.startS, decision, h, { devicePrecopy, pendingBytes, prev, throttle, config, layout: vm.layout });
      rounds.push(rec);
      if (decision === 'postcopy') {
        progress?.roundStart(rec);
        const p = vm.postcopy(h.dirtyRuns!, nowS + config.deviceState.stopCopy / config.bandwidth);
        postcopy = { round, pages: p.pages, faults: p.faults, waitS: p.waitS, streamS: p.streamS };
        progress?.roundEnd(rec);
      } else send(rec);
      if (decision === 'switch-over' || decision === 'postcopy') converged = true;
      if (decision !== 'continue') break;
    }
    progress?.finish();
  } finally {
    vm.dispose();
  }
  const accel = vm.accel ? { pasid: vm.accel.pasid, jobs: vm.accel.jobs } : null;
  const summary = summarize(config, vm.layout.slots, rounds, converged, throttle, accel, postcopy, {
    harvests: harvestMs.length,
    totalMs: harvestMs.reduce((a, b) => a + b, 0),
    meanMs: harvestMs.reduce((a, b) => a + b, 0) / harvestMs.length,
    maxMs: Math.max(...harvestMs),
    activityMs: vm.activityMs,
    peakHeapBytes: peakHeap,
  }, performance.now() - wall0, cpuLogSummary(vm, cpuSyncs));
  return { summary, heatmap: { columns, pagesPerCell, lowPages: vm.layout.lowPages, ramPages: vm.layout.ramPages, rows: heatRows } };
}

/** Round 0: every RAM page sent while tracking runs (zero RAM as headers), and the device's initial data. */
function bulkRound(layout: GuestLayout, config: SimConfig): RoundRecord {
  const zeroPages = zeroPagesOf(layout.ramPages, config.zeroFraction);
  const normalPages = layout.ramPages - zeroPages;
  const deviceBytes = config.deviceState.precopyInitial;
  const bytes = ramWireBytes(normalPages, zeroPages) + deviceBytes;
  const durationS = roundDuration(bytes, config.bandwidth);
  return {
    round: 0, phase: 'bulk', startS: 0, devicePages: 0, dirtyPages: layout.ramPages, runs: layout.slots.length,
    pagesSent: layout.ramPages, normalPages, zeroPages, deviceBytes, bytesSent: bytes, durationS,
    dirtyRate: 0, expectedDowntimeS: expectedDowntime(config.memory, config.bandwidth),
    devicePendingBytes: deviceBytes + config.deviceState.stopCopy, pendingBytes: config.memory + deviceBytes + config.deviceState.stopCopy,
    dirtySyncCount: 1, dirtyPagesRate: 0, throttlePct: 0, dirtyLimit: 0, transferredBytes: bytes,
    mbps: throughputMbps(bytes, durationS), pagesPerSecond: durationS > 0 ? layout.ramPages / durationS : 0,
    accelPages: 0, accelUnseen: 0, allDirty: false, harvestMs: 0,
  };
}

/** A harvest, timed (GET_BITMAP, merge, popcount, runs), its heat-map row, then the hook. */
function harvest(vm: MigrationVm, round: number, columns: number, pagesPerCell: number, hooks: SimHooks, keepRuns: boolean): HarvestFacts {
  const h0 = performance.now();
  const { report, devicePages, accel, cpu } = vm.harvest();
  try {
    const dirtyPages = report.count;
    const runs = countRuns(report.bitmap);
    const ms = performance.now() - h0;
    const cells = density(report, vm.layout, columns, pagesPerCell);
    hooks.onHarvest?.(round, report);
    return { devicePages, dirtyPages, runs, ms, cells, accel, dirtyRuns: keepRuns ? report.compactRuns() : null, cpu };
  } finally {
    report.dispose();
  }
}

/** What a round record needs besides its harvest. */
interface RoundContext {
  devicePrecopy: number;
  pendingBytes: number;
  prev: RoundRecord;
  throttle: Throttle;
  config: SimConfig;
  layout: GuestLayout;
}

/**
 * The record of round `round`, which starts at `startS`, decided by its harvest: a pre-copy
 * round sends the dirty pages and the device's pre-copy data; the stop-copy sends the dirty pages
 * and the device's stop-copy data; an unconverged end sends nothing.
 */
function roundRecord(round: number, startS: number, lastHarvestS: number, decision: Decision | 'postcopy', h: HarvestFacts, x: RoundContext): RoundRecord {
  const { config, throttle } = x;
  const dirtyBytes = h.dirtyPages * GUEST_PAGE;
  const sends = decision !== 'give-up';
  const normalPages = sends ? h.dirtyPages : 0;
  const deviceBytes = !sends ? 0 : decision === 'continue' ? x.devicePrecopy : config.deviceState.stopCopy;
  const bytesSent = ramWireBytes(normalPages, 0) + deviceBytes;
  const durationS = roundDuration(bytesSent, config.bandwidth);
  return {
    round,
    phase: decision === 'switch-over' ? 'stop-copy' : decision === 'give-up' ? 'unconverged' : decision === 'postcopy' ? 'postcopy' : 'precopy',
    startS,
    devicePages: h.devicePages,
    dirtyPages: h.dirtyPages,
    runs: h.runs,
    pagesSent: normalPages,
    normalPages,
    zeroPages: 0,
    deviceBytes,
    bytesSent,
    durationS,
    dirtyRate: dirtyRate(dirtyBytes, startS - lastHarvestS),
    expectedDowntimeS: expectedDowntime(dirtyBytes, config.bandwidth),
    devicePendingBytes: x.devicePrecopy + config.deviceState.stopCopy,
    pendingBytes: x.pendingBytes,
    dirtySyncCount: round + 1,
    dirtyPagesRate: throttle.dirtyPagesRate,
    throttlePct: throttle.pct,
    dirtyLimit: throttle.guestLimit,
    transferredBytes: x.prev.transferredBytes + bytesSent,
    mbps: throughputMbps(bytesSent, durationS),
    pagesPerSecond: durationS > 0 ? normalPages / durationS : 0,
    accelPages: h.accel?.written ?? 0,
    accelUnseen: h.accel?.unseen ?? 0,
    allDirty: h.devicePages >= x.layout.ramPages,
    harvestMs: h.ms,
  };
}

/** Per-cell dirty density (0..255) over RAM in RAM order: one core popcount per cell slice. */
function density(report: DirtyReport, layout: GuestLayout, columns: number, pagesPerCell: number): Uint8Array {
  const cells = new Uint8Array(columns);
  for (let i = 0; i < columns; i++) {
    const first = i * pagesPerCell;
    const n = Math.min(pagesPerCell, layout.ramPages - first);
    if (n <= 0) break;
    let dirty = 0;
    layout.forEachGpaRange(first, n, (f, cnt) => {
      dirty += report.countRange(f, cnt);
    });
    cells[i] = dirty === 0 ? 0 : Math.max(1, Math.round((255 * dirty) / n));
  }
  return cells;
}
