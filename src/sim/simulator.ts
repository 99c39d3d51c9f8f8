// The pre-copy live-migration simulator. A guest's RAM is mapped into a VFIO container the way a
// VMM maps it; an emulated vGPU pins and writes guest memory through the engine; an optional
// passthrough device sits in an IOMMU-backed group; the guest CPU's writes go to a separate
// engine bitmap (the KVM dirty log). Round 0 sends all RAM while tracking runs; every later round
// harvests the container with GET_BITMAP semantics (readReport, real engine calls), merges the
// CPU log into it, and either switches over (expected downtime within the limit), sends the dirty
// pages (virtual time passes at the link bandwidth while guest and devices keep writing), or
// gives up at the round limit. Engine time per harvest is measured for real, apart.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { coreOf, readReport, type DirtyContainer, type DirtyReport } from '../export/dirty_report.js';
import type { Core } from '../wasm.js';
import type { SimConfig } from './config.js';
import { decide, dirtyRate, expectedDowntime, roundDuration, type ConvergenceRule } from './convergence.js';
import { GUEST_PAGE, GuestLayout } from './guest_layout.js';
import type { Heatmap } from './html_report.js';
import { SUMMARY_SCHEMA, type RoundRecord, type SimSummary } from './summary.js';
import { VgpuDriver, type MdevDevice } from './vgpu.js';
import { Workload, type DirtySink } from './workload.js';

/** What the simulator needs of an engine (the typed API of src/index.ts). */
export interface SimEngine {
  createProcess(opts?: { memlockLimit?: bigint; capIpcLock?: boolean }): SimProcess;
  createGroup(opts: { kind: 'iommu' | 'emulated'; devices?: string[] }): SimGroup;
  openContainer(proc: SimProcess): SimContainer;
  memoryInUse(): number;
}
export interface SimProcess {
  mmap(length: bigint | number): bigint;
}
export interface SimGroup {
  readonly id: number;
  readonly devices: readonly MdevDevice[];
}
export interface SimContainer extends DirtyContainer {
  attach(group: SimGroup): void;
  setIommu(type: 'type1v2' | 'type1'): void;
  openDevice(group: SimGroup, name?: string): number;
  map(m: { iova: bigint; vaddr: bigint; size: bigint; read?: boolean; write?: boolean }): void;
  unmap(m: { iova: bigint; size: bigint }): bigint;
  unmapAll(): bigint;
  readonly dirty: DirtyContainer['dirty'] & { start(): void; stop(): void };
  close(): void;
}

/** The passthrough device's rings, pinned in `pinning` mode: 64 KiB at GPA 1 MiB. */
const PT_RING_GPA = 1 << 20;
const PT_RING_PAGES = 16;

/** Hooks of a run: progress, and where each round's bitmap and runs go. */
export interface SimHooks {
  progress?: {
    roundStart(r: RoundRecord): void;
    advance(fraction: number): void;
    roundEnd(r: RoundRecord): void;
    finish(): void;
  };
  /** Directory to write round-NNN.bitmap (kernel layout) and round-NNN.runs.json into. */
  exportDir?: string;
}

/** What a run returns: the summary and the heat map for the HTML report. */
export interface SimResult {
  summary: SimSummary;
  heatmap: Heatmap;
}

/** Runs one simulated pre-copy migration on `engine` (a fresh engine: the run maps 0 .. RAM). */
export function simulate(engine: SimEngine, config: SimConfig, hooks: SimHooks = {}): SimResult {
  const wall0 = performance.now();
  const layout = new GuestLayout(config.memory, config.lowMemory);
  const rule: ConvergenceRule = { bandwidth: config.bandwidth, downtimeLimit: config.downtimeLimit, maxRounds: config.maxRounds };
  const progress = hooks.progress;
  if (hooks.exportDir) mkdirSync(hooks.exportDir, { recursive: true });

  // ---- the VMM's set-up: process memory, container, groups, mappings, devices ----
  const proc = engine.createProcess();
  const base = proc.mmap(BigInt(config.memory));
  const c = engine.openContainer(proc);
  // The container needs a group for SET_IOMMU: the vGPU's, or an idle emulated one without it.
  const mdevGroup = engine.createGroup({ kind: 'emulated', devices: [config.vgpu ? 'vgpu0' : 'mdev-idle'] });
  c.attach(mdevGroup);
  const ptGroup = config.passthrough !== 'none' ? engine.createGroup({ kind: 'iommu', devices: ['0000:65:00.0'] }) : null;
  if (ptGroup) c.attach(ptGroup);
  c.setIommu('type1v2');
  for (const s of layout.slots) {
    c.map({ iova: BigInt(s.gpa), vaddr: base + BigInt(s.firstRamPage) * BigInt(GUEST_PAGE), size: BigInt(s.size) });
  }
  let vgpu: VgpuDriver | null = null;
  if (config.vgpu) {
    c.openDevice(mdevGroup, 'vgpu0');
    const top = layout.slots[layout.slots.length - 1];
    vgpu = new VgpuDriver(mdevGroup.devices[0], {
      regionGpa: top.gpa + top.size - config.vgpuRegion,
      regionSize: config.vgpuRegion,
      pinned: config.vgpuPinned,
      churn: config.vgpuChurn,
      dmaRate: config.vgpuDmaRate,
      seed: config.seed,
    });
  }
  let ptDevice: MdevDevice | null = null;
  if (ptGroup && config.passthrough === 'pinning') {
    c.openDevice(ptGroup, '0000:65:00.0');
    ptDevice = ptGroup.devices[0];
    ptDevice.registerDmaUnmap(() => ptDevice!.unpinPages(BigInt(PT_RING_GPA), PT_RING_PAGES));
  }

  const core: Core = coreOf(c);
  const cpuLog = DirtyBitmap.create(core, layout.gpaPages); // the KVM dirty log, by guest page
  const sink: DirtySink = {
    pages: (p, n) => cpuLog.setBatch(n === p.length ? p : p.subarray(0, n)),
    range: (first, count) => cpuLog.setRange(first, count),
  };
  const workload = new Workload(layout, {
    kind: config.workload, rate: config.dirtyRate, hotFraction: config.hotFraction, hotWeight: config.hotWeight, seed: config.seed,
  });

  // ---- tracking starts; the bulk round sends every page ----
  c.dirty.start();
  vgpu?.start();
  if (ptDevice) {
    const r = ptDevice.pinPages(BigInt(PT_RING_GPA), PT_RING_PAGES, 3);
    if (r !== PT_RING_PAGES) throw new Error(`passthrough pinPages failed: ${r}`);
  }

  let activityMs = 0;
  /** Guest and device activity over virtual time (t0, t1], in steps, with progress. */
  const activity = (t0: number, t1: number): void => {
    const a0 = performance.now();
    const steps = Math.max(1, Math.ceil((t1 - t0) / config.step - 1e-9));
    for (let i = 0; i < steps; i++) {
      const a = t0 + ((t1 - t0) * i) / steps;
      const b = i === steps - 1 ? t1 : t0 + ((t1 - t0) * (i + 1)) / steps;
      workload.run(a, b, sink);
      vgpu?.run(a, b);
      progress?.advance((i + 1) / steps);
    }
    activityMs += performance.now() - a0;
  };

  const rounds: RoundRecord[] = [];
  const heatRows: Heatmap['rows'] = [];
  const columns = config.heatmapColumns;
  const pagesPerCell = Math.ceil(layout.ramPages / columns);
  const harvestMs: number[] = [];
  let peakHeap = engine.memoryInUse();

  let t = 0;
  let lastHarvest = 0;
  const bulkBytes = config.memory;
  const bulk: RoundRecord = {
    round: 0, phase: 'bulk', startS: 0, devicePages: 0, dirtyPages: layout.ramPages, runs: layout.slots.length,
    pagesSent: layout.ramPages, bytesSent: bulkBytes, durationS: roundDuration(bulkBytes, config.bandwidth),
    dirtyRate: 0, expectedDowntimeS: expectedDowntime(bulkBytes, config.bandwidth), allDirty: false, harvestMs: 0,
  };
  rounds.push(bulk);
  progress?.roundStart(bulk);
  activity(0, bulk.durationS);
  t = bulk.durationS;
  progress?.roundEnd(bulk);

  let converged = false;
  for (let round = 1; ; round++) {
    // ---- harvest: GET_BITMAP of the whole guest, merged with the CPU dirty log ----
    const h0 = performance.now();
    const report = readReport(c, { iova: 0n, size: BigInt(layout.gpaEnd), core });
    const devicePages = report.count;
    report.mergeFrom(cpuLog);
    cpuLog.clear();
    const dirtyPages = report.count;
    const runs = report.compactRuns().length >>> 1;
    const ms = performance.now() - h0;
    harvestMs.push(ms);
    peakHeap = Math.max(peakHeap, engine.memoryInUse());

    heatRows.push({ round, cells: density(report, layout, columns, pagesPerCell) });
    if (hooks.exportDir) exportRound(hooks.exportDir, round, report);
    report.dispose();

    const dirtyBytes = dirtyPages * GUEST_PAGE;
    const roundsDone = round; // pre-copy rounds sent so far, the bulk round included
    const decision = decide(rule, roundsDone, dirtyBytes);
    const rec: RoundRecord = {
      round,
      phase: decision === 'switch-over' ? 'stop-copy' : decision === 'give-up' ? 'unconverged' : 'precopy',
      startS: t,
      devicePages,
      dirtyPages,
      runs,
      pagesSent: decision === 'give-up' ? 0 : dirtyPages,
      bytesSent: decision === 'give-up' ? 0 : dirtyBytes,
      durationS: decision === 'give-up' ? 0 : roundDuration(dirtyBytes, config.bandwidth),
      dirtyRate: dirtyRate(dirtyBytes, t - lastHarvest),
      expectedDowntimeS: expectedDowntime(dirtyBytes, config.bandwidth),
      allDirty: devicePages >= layout.ramPages,
      harvestMs: ms,
    };
    lastHarvest = t;
    rounds.push(rec);
    progress?.roundStart(rec);
    if (rec.phase === 'precopy') activity(t, t + rec.durationS);
    t += rec.durationS;
    progress?.roundEnd(rec);
    if (decision === 'switch-over') converged = true;
    if (decision !== 'continue') break;
  }
  progress?.finish();

  // ---- tear-down: the devices let go, tracking stops, memory goes back ----
  vgpu?.stop();
  if (ptDevice) ptDevice.unpinPages(BigInt(PT_RING_GPA), PT_RING_PAGES);
  c.dirty.stop();
  cpuLog.dispose();
  c.unmapAll();
  c.close();

  const last = rounds[rounds.length - 1];
  const totalMs = harvestMs.reduce((a, b) => a + b, 0);
  const summary: SimSummary = {
    schema: SUMMARY_SCHEMA,
    config: { ...config },
    slots: layout.slots.map((s) => ({ gpa: s.gpa, size: s.size })),
    converged,
    rounds: rounds.length - 1,
    totalTimeS: t,
    downtimeS: last.expectedDowntimeS,
    bytesSent: rounds.reduce((a, r) => a + r.bytesSent, 0),
    allDirtyRounds: rounds.filter((r) => r.allDirty).length,
    engine: {
      harvests: harvestMs.length,
      totalMs,
      meanMs: totalMs / harvestMs.length,
      maxMs: Math.max(...harvestMs),
      activityMs,
      peakHeapBytes: peakHeap,
    },
    wallMs: performance.now() - wall0,
    roundsDetail: rounds,
  };
  const heatmap: Heatmap = { columns, pagesPerCell, lowPages: layout.lowPages, ramPages: layout.ramPages, rows: heatRows };
  return { summary, heatmap };
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

/** Writes a round's bitmap (kernel layout) and its runs (JSON, hex strings). */
function exportRound(dir: string, round: number, report: DirtyReport): void {
  const name = `round-${String(round).padStart(3, '0')}`;
  writeFileSync(join(dir, `${name}.bitmap`), report.bytes());
  const runs = report.runs().map((r) => ({ iova: `0x${r.iova.toString(16)}`, length: `0x${r.length.toString(16)}` }));
  const doc = { round, iova: `0x${report.iova.toString(16)}`, pgsize: Number(report.pgsize), pages: report.pages, dirty: report.count, runs };
  writeFileSync(join(dir, `${name}.runs.json`), `${JSON.stringify(doc)}\n`);
}
