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
import { decide, dirtyRate, expectedDowntime, roundDuration, type ConvergenceRule, type Decision } from './convergence.js';
import { GUEST_PAGE, type GuestLayout } from './guest_layout.js';
import type { Heatmap } from './html_report.js';
import { MigrationVm } from './migration_vm.js';
import { runTooLong } from './run_bounds.js';
import type { SimEngine } from './sim_engine.js';
import { SUMMARY_SCHEMA, type RoundRecord, type SimSummary } from './summary.js';

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
  const vm = new MigrationVm(engine, config);
  const rule: ConvergenceRule = { bandwidth: config.bandwidth, downtimeLimit: config.downtimeLimit, maxRounds: config.maxRounds };
  const progress = hooks.progress;
  const columns = config.heatmapColumns;
  const pagesPerCell = Math.ceil(vm.layout.ramPages / columns);
  const rounds: RoundRecord[] = [bulkRound(vm.layout, config)];
  const heatRows: Heatmap['rows'] = [];
  const harvestMs: number[] = [];
  let peakHeap = engine.memoryInUse();
  let converged = false;
  try {
    vm.start();
    const send = (rec: RoundRecord) => {
      progress?.roundStart(rec);
      if (rec.phase === 'precopy' || rec.phase === 'bulk') vm.run(rec.startS, rec.startS + rec.durationS, progress?.advance.bind(progress));
      progress?.roundEnd(rec);
    };
    send(rounds[0]);
    for (let round = 1; ; round++) {
      const h = harvest(vm, round, columns, pagesPerCell, hooks);
      harvestMs.push(h.ms);
      peakHeap = Math.max(peakHeap, engine.memoryInUse());
      heatRows.push({ round, cells: h.cells });
      const prev = rounds[rounds.length - 1];
      const lastHarvestS = round === 1 ? 0 : prev.startS;
      const decision = decide(rule, round, h.dirtyPages * GUEST_PAGE);
      const rec = roundRecord(round, prev.startS + prev.durationS, lastHarvestS, decision, h, vm.layout, config.bandwidth);
      rounds.push(rec);
      send(rec);
      if (decision === 'switch-over') converged = true;
      if (decision !== 'continue') break;
    }
    progress?.finish();
  } finally {
    vm.dispose();
  }
  const summary = summarize(config, vm, rounds, converged, harvestMs, peakHeap, performance.now() - wall0);
  return { summary, heatmap: { columns, pagesPerCell, lowPages: vm.layout.lowPages, ramPages: vm.layout.ramPages, rows: heatRows } };
}

/** Round 0: every RAM page sent while tracking runs. */
function bulkRound(layout: GuestLayout, config: SimConfig): RoundRecord {
  const bytes = config.memory;
  return {
    round: 0, phase: 'bulk', startS: 0, devicePages: 0, dirtyPages: layout.ramPages, runs: layout.slots.length,
    pagesSent: layout.ramPages, bytesSent: bytes, durationS: roundDuration(bytes, config.bandwidth),
    dirtyRate: 0, expectedDowntimeS: expectedDowntime(bytes, config.bandwidth), allDirty: false, harvestMs: 0,
  };
}

/** A harvest, timed (GET_BITMAP, merge, popcount, runs), its heat-map row, then the hook. */
function harvest(vm: MigrationVm, round: number, columns: number, pagesPerCell: number, hooks: SimHooks): HarvestFacts {
  const h0 = performance.now();
  const { report, devicePages } = vm.harvest();
  try {
    const dirtyPages = report.count;
    const runs = countRuns(report.bitmap);
    const ms = performance.now() - h0;
    const cells = density(report, vm.layout, columns, pagesPerCell);
    hooks.onHarvest?.(round, report);
    return { devicePages, dirtyPages, runs, ms, cells };
  } finally {
    report.dispose();
  }
}

/** The record of round `round`, which starts at `startS`, decided by its harvest. */
function roundRecord(round: number, startS: number, lastHarvestS: number, decision: Decision, h: HarvestFacts, layout: GuestLayout, bandwidth: number): RoundRecord {
  const dirtyBytes = h.dirtyPages * GUEST_PAGE;
  const sends = decision !== 'give-up';
  return {
    round,
    phase: decision === 'switch-over' ? 'stop-copy' : decision === 'give-up' ? 'unconverged' : 'precopy',
    startS,
    devicePages: h.devicePages,
    dirtyPages: h.dirtyPages,
    runs: h.runs,
    pagesSent: sends ? h.dirtyPages : 0,
    bytesSent: sends ? dirtyBytes : 0,
    durationS: sends ? roundDuration(dirtyBytes, bandwidth) : 0,
    dirtyRate: dirtyRate(dirtyBytes, startS - lastHarvestS),
    expectedDowntimeS: expectedDowntime(dirtyBytes, bandwidth),
    allDirty: h.devicePages >= layout.ramPages,
    harvestMs: h.ms,
  };
}

function summarize(config: SimConfig, vm: MigrationVm, rounds: RoundRecord[], converged: boolean, harvestMs: number[], peakHeap: number, wallMs: number): SimSummary {
  const last = rounds[rounds.length - 1];
  const totalMs = harvestMs.reduce((a, b) => a + b, 0);
  return {
    schema: SUMMARY_SCHEMA,
    config: { ...config },
    slots: vm.layout.slots.map((s) => ({ gpa: s.gpa, size: s.size })),
    converged,
    rounds: rounds.length - 1,
    totalTimeS: last.startS + last.durationS,
    downtimeS: last.expectedDowntimeS,
    bytesSent: rounds.reduce((a, r) => a + r.bytesSent, 0),
    allDirtyRounds: rounds.filter((r) => r.allDirty).length,
    engine: {
      harvests: harvestMs.length,
      totalMs,
      meanMs: totalMs / harvestMs.length,
      maxMs: Math.max(...harvestMs),
      activityMs: vm.activityMs,
      peakHeapBytes: peakHeap,
    },
    wallMs,
    roundsDetail: rounds,
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
