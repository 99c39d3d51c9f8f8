// The simulator on the real engine: the switch-over rule on cases whose answers are worked out by
// hand, the round limit, the all-dirty rule of a non-pinning IOMMU-backed group and how pinning
// lifts it, the vGPU's pins in every report, reproducibility, and --export's files.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { defaultConfig } from '../src/cli/options.js';
import type { SimConfig } from '../src/sim/config.js';
import { simulate } from '../src/sim/simulator.js';
import { roundFileName } from '../src/cli/simulate.js';
import type { DirtyReport } from '../src/export/dirty_report.js';
import { writeReportFiles } from '../src/export/report_files.js';
import type { RoundRecord } from '../src/sim/summary.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A small guest with no vGPU: only the CPU dirty log dirties pages. */
function config(o: Partial<SimConfig>): SimConfig {
  return { ...defaultConfig(), memory: GiB, vgpu: false, workload: 'sweep', ...o };
}

async function run(c: SimConfig, exportDir?: string) {
  const engine = await createEngine();
  const onHarvest = exportDir === undefined ? undefined : (round: number, report: DirtyReport) => {
    writeReportFiles(exportDir, roundFileName(round), report, new Set(['bitmap', 'runs']), { round });
  };
  const r = simulate(engine, c, { onHarvest });
  return { ...r, engine };
}

const brief = (r: RoundRecord) => [r.round, r.phase, r.dirtyPages, r.pagesSent, r.startS, r.durationS, r.expectedDowntimeS];

describe('switch-over rule', () => {
  it('converges as worked out by hand: 1 GiB, 1 GiB/s link, sweep at 512 MiB/s, 300 ms', async () => {
    // Round 0 sends 1 GiB in 1 s while the sweep dirties 512 MiB. Harvest 1: 512 MiB -> 500 ms
    // > 300 ms, so round 1 sends it in 0.5 s while 256 MiB more is dirtied. Harvest 2: 256 MiB
    // -> 250 ms <= 300 ms: stop-copy, 250 ms of downtime. 1.75 s in all, 1792 MiB sent.
    const { summary } = await run(config({ bandwidth: 1024 * MiB, dirtyRate: 512 * MiB, downtimeLimit: 0.3 }));
    expect(summary.roundsDetail.map(brief)).toEqual([
      [0, 'bulk', 262144, 262144, 0, 1, 1],
      [1, 'precopy', 131072, 131072, 1, 0.5, 0.5],
      [2, 'stop-copy', 65536, 65536, 1.5, 0.25, 0.25],
    ]);
    expect(summary.converged).toBe(true);
    expect(summary.rounds).toBe(2);
    expect(summary.totalTimeS).toBe(1.75);
    expect(summary.downtimeS).toBe(0.25);
    expect(summary.bytesSent).toBe(1792 * MiB);
    expect(summary.roundsDetail.map((r) => r.devicePages)).toEqual([0, 0, 0]); // no device DMA
    expect(summary.roundsDetail[1].dirtyRate).toBe(512 * MiB);
    expect(summary.roundsDetail[1].runs).toBe(1); // the sweep is one run
  });

  it('switches over at exactly the limit', async () => {
    // 1 GiB/s link, sweep at 300 MiB/s, limit 300 ms: harvest 1 finds exactly 300 MiB.
    const { summary } = await run(config({ bandwidth: 1024 * MiB, dirtyRate: 300 * MiB, downtimeLimit: 300 / 1024 }));
    expect(summary.roundsDetail.map((r) => r.phase)).toEqual(['bulk', 'stop-copy']);
    expect(summary.roundsDetail[1].dirtyPages).toBe(76800);
  });

  it('gives up at the round limit when the guest dirties as fast as the link', async () => {
    // Each 1 s round the sweep dirties all of RAM again: 1 s expected downtime every harvest.
    const { summary } = await run(config({ bandwidth: 1024 * MiB, dirtyRate: 1024 * MiB, maxRounds: 4 }));
    expect(summary.roundsDetail.map(brief)).toEqual([
      [0, 'bulk', 262144, 262144, 0, 1, 1],
      [1, 'precopy', 262144, 262144, 1, 1, 1],
      [2, 'precopy', 262144, 262144, 2, 1, 1],
      [3, 'precopy', 262144, 262144, 3, 1, 1],
      [4, 'unconverged', 262144, 0, 4, 0, 1],
    ]);
    expect(summary.converged).toBe(false);
    expect(summary.rounds).toBe(4);
    expect(summary.downtimeS).toBe(1);
    expect(summary.totalTimeS).toBe(4);
  });
});

describe('devices in the container', () => {
  const quiet = { memory: 256 * MiB, dirtyRate: 0, bandwidth: 1024 * MiB, maxRounds: 3 } as const;

  it('reports every page each round with a passthrough group that never pins', async () => {
    // 256 MiB at 1 GiB/s is 250 ms of downtime: a 100 ms limit cannot be met by sending all RAM.
    const { summary } = await run(config({ ...quiet, passthrough: 'unpinned', downtimeLimit: 0.1 }));
    const harvests = summary.roundsDetail.slice(1);
    expect(harvests.map((r) => [r.phase, r.devicePages, r.allDirty])).toEqual([
      ['precopy', 65536, true], ['precopy', 65536, true], ['unconverged', 65536, true],
    ]);
    expect(summary.converged).toBe(false);
    expect(summary.allDirtyRounds).toBe(3);
  });

  it('reports only the pinned pages once the passthrough driver pins', async () => {
    const { summary } = await run(config({ ...quiet, passthrough: 'pinning', downtimeLimit: 0.1 }));
    expect(summary.roundsDetail.slice(1).map((r) => [r.phase, r.devicePages, r.allDirty])).toEqual([['stop-copy', 16, false]]);
    expect(summary.converged).toBe(true);
  });

  it('reports the vGPU working set in every harvest while it stays pinned', async () => {
    const { summary } = await run(config({
      ...quiet, vgpu: true, vgpuRegion: 64 * MiB, vgpuPinned: 16 * MiB, vgpuChurn: 0, vgpuDmaRate: 0, downtimeLimit: 0.001,
    }));
    const h = summary.roundsDetail.slice(1);
    expect(h.map((r) => [r.devicePages, r.dirtyPages, r.runs])).toEqual([[4096, 4096, h[0].runs], [4096, 4096, h[1].runs], [4096, 4096, h[2].runs]]);
    expect(h[0].runs).toBeGreaterThanOrEqual(1);
    expect(h[0].runs).toBeLessThanOrEqual(8); // 8 buffers of 2 MiB, some adjacent
  });

  it('adds churned buffers and dmaRw ring writes to the device report', async () => {
    // A 1 s bulk round (256 MiB at 256 MiB/s): 8 buffers pinned, 8 churned in (16 MiB/s), a new
    // one possibly reusing a slot just freed, so 9 to 16 distinct buffers of 512 pages; and 16
    // ring writes of 64 KiB (1 MiB/s) on 16 to 256 pages of the ring, whole 16-page writes.
    const { summary } = await run(config({
      ...quiet, bandwidth: 256 * MiB, vgpu: true, vgpuRegion: 64 * MiB, vgpuPinned: 16 * MiB, vgpuChurn: 16 * MiB,
      vgpuDmaRate: 1 * MiB, maxRounds: 1,
    }));
    const dp = summary.roundsDetail[1].devicePages;
    const buffers = Math.floor(dp / 512), ring = dp % 512;
    expect(buffers).toBeGreaterThanOrEqual(9);
    expect(buffers).toBeLessThanOrEqual(16);
    expect(ring).toBeGreaterThanOrEqual(16);
    expect(ring).toBeLessThanOrEqual(256);
    expect(ring % 16).toBe(0);
  });
});

describe('runs', () => {
  it('reproduces a run from its seed and differs with another seed', async () => {
    const c = { ...defaultConfig(), memory: 2 * GiB, vgpuRegion: 256 * MiB, maxRounds: 6 };
    const strip = (s: { roundsDetail: RoundRecord[] }) => s.roundsDetail.map((r) => ({ ...r, harvestMs: 0 }));
    const a = await run(c);
    const b = await run(c);
    const d = await run({ ...c, seed: 2 });
    expect(strip(a.summary)).toEqual(strip(b.summary));
    expect(a.heatmap.rows).toEqual(b.heatmap.rows);
    expect(strip(d.summary)).not.toEqual(strip(a.summary));
  });

  it('maps RAM around the PCI hole and leaves the engine clean', async () => {
    const { summary, heatmap, engine } = await run({ ...defaultConfig(), memory: 4 * GiB, lowMemory: 3 * GiB, vgpuRegion: 256 * MiB, maxRounds: 3 });
    expect(summary.slots).toEqual([{ gpa: 0, size: 3 * GiB }, { gpa: 4 * GiB, size: GiB }]);
    expect(heatmap.lowPages).toBe(3 * 262144);
    expect(heatmap.rows).toHaveLength(summary.roundsDetail.length - 1);
    // Torn down: tracking off, every mapping gone, no pin left, no page charged.
    for (const c of engine.inspect().containers) {
      expect(c.tracking).toBe(false);
      expect(c.dmas).toEqual([]);
    }
    expect(engine.inspect().processes.map((p) => p.lockedVm)).toEqual([0n]);
  });

  it('exports each round\'s bitmap and runs, consistent with each other', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-sim-'));
    const { summary } = await run(config({ memory: 64 * MiB, bandwidth: 256 * MiB, dirtyRate: 64 * MiB, workload: 'uniform' }), dir);
    const files = readdirSync(dir).sort();
    const harvests = summary.roundsDetail.length - 1;
    expect(files).toHaveLength(2 * harvests);
    expect(files[0]).toBe('round-001.bitmap');
    const bytes = readFileSync(join(dir, 'round-001.bitmap'));
    expect(bytes.length).toBe(Math.ceil(16384 / 64) * 8);
    const doc = JSON.parse(readFileSync(join(dir, 'round-001.runs.json'), 'utf8'));
    expect(doc.pgsize).toBe(4096);
    expect(doc.dirty).toBe(summary.roundsDetail[1].dirtyPages);
    const fromRuns = new Uint8Array(bytes.length);
    for (const r of doc.runs) {
      const first = Number(BigInt(r.iova) / 4096n), n = Number(BigInt(r.length) / 4096n);
      for (let i = first; i < first + n; i++) fromRuns[i >> 3] |= 1 << (i & 7);
    }
    expect(Buffer.compare(Buffer.from(fromRuns), bytes)).toBe(0);
  });
});

describe('bounds', () => {
  it('cuts a round into at most 1000 steps, whatever the bandwidth', async () => {
    // 16 MiB at 125 B/s: a bulk round of 134,218 s, 1,342,178 steps of 100 ms before.
    const engine = await createEngine();
    const steps: number[] = [];
    let n = 0;
    const progress = { roundStart: () => { n = 0; }, advance: () => { n++; }, roundEnd: () => { steps.push(n); }, finish: () => {} };
    const { summary } = simulate(engine, config({ memory: 16 * MiB, bandwidth: 125, dirtyRate: 0, maxRounds: 2 }), { progress });
    expect(summary.roundsDetail.map((r) => [r.phase, r.durationS])).toEqual([['bulk', 16 * MiB / 125], ['stop-copy', 0]]);
    expect(steps).toEqual([1000, 0]);
  });

  it('refuses a run too long to simulate before setting anything up', async () => {
    const engine = await createEngine();
    const heap = engine.memoryInUse();
    expect(() => simulate(engine, config({ memory: 16 * GiB, bandwidth: 125, workload: 'uniform' }))).toThrow(/^run too long: the longest round sends all 16 GiB of RAM at 125 B\/s/);
    expect(engine.memoryInUse()).toBe(heap);
    expect(engine.inspect().containers).toEqual([]);
  });
});
