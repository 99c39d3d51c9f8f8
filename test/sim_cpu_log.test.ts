// The simulator's guest CPU side through KVM (--cpu-log): the same run in every mode gives the same
// migration, each mode's KVM calls are exact, every page the guest stored to since a sync is in
// the next one (many seeds, small rings that fill), zero stores take no frame, and the options'
// errors.
import { describe, expect, it, vi } from 'vitest';
import { createEngine, type Engine } from '../src/index.js';
import { defaultConfig, parseSimulateOptions } from '../src/cli/options.js';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { KvmGuest, type CpuLogMode } from '../src/sim/cpu_log.js';
import type { SimConfig } from '../src/sim/config.js';
import { GuestLayout } from '../src/sim/guest_layout.js';
import { Prng } from '../src/sim/prng.js';
import { simulate } from '../src/sim/simulator.js';
import { vmmProcess } from '../src/sim/local_kvm.js';
import { formatSummary } from '../src/cli/summary_text.js';
import { renderHtmlReport } from '../src/sim/html_report.js';
import { describeCpuLog } from '../src/sim/cpu_log_summary.js';
import type { SimSummary } from '../src/sim/summary.js';

const MiB = 2 ** 20;
const MODES: CpuLogMode[] = ['bitmap', 'manual', 'ring'];

/** A 64 MiB guest with a small vGPU, a uniform workload and a slow link: bulk, a pre-copy round, stop-copy. */
function config(o: Partial<SimConfig> = {}): SimConfig {
  return {
    ...defaultConfig(), memory: 64 * MiB, vgpuRegion: 32 * MiB, vgpuPinned: 2 * MiB, vgpuDmaRate: MiB, vgpuChurn: MiB,
    workload: 'uniform', dirtyRate: 16 * MiB, bandwidth: 64 * MiB, downtimeLimit: 0.1, ...o,
  };
}

async function run(c: SimConfig) {
  return simulate(await createEngine(), c).summary;
}

describe('simulate --cpu-log', () => {
  it('gives the same rounds in every mode, with each mode\'s exact KVM calls', async () => {
    const runs: SimSummary[] = [];
    for (const mode of MODES) runs.push(await run(config({ cpuLog: mode, dirtyRingSize: 256, vcpus: 2 })));
    const rounds = (s: SimSummary) => s.roundsDetail.map((r) => [r.phase, r.dirtyPages, r.bytesSent]);
    expect(rounds(runs[1])).toEqual(rounds(runs[0]));
    expect(rounds(runs[2])).toEqual(rounds(runs[0]));
    const [bitmap, manual, ring] = runs.map((s) => s.cpuLog);
    expect(bitmap.rounds.length).toBe(runs[0].rounds);
    // The CPU log's pages are the same in every mode; the device's GET_BITMAP adds the vGPU's pages.
    expect(manual.rounds.map((r) => r.pages)).toEqual(bitmap.rounds.map((r) => r.pages));
    expect(ring.rounds.map((r) => r.pages)).toEqual(bitmap.rounds.map((r) => r.pages));
    expect(bitmap.rounds.map((r) => r.pages)).toEqual([2790, 826]);
    // One slot: one GET per harvest; manual clears each 2^18-page chunk that fetched a bit (one here).
    expect(bitmap.total).toEqual({ pages: 3616, getCalls: 2, clearCalls: 0, reaped: 0, resets: 0, fullEvents: 0 });
    expect(manual.total).toEqual({ pages: 3616, getCalls: 2, clearCalls: 2, reaped: 0, resets: 0, fullEvents: 0 });
    // A 256-entry ring goes soft-full at 192: reaps on the way, one more at each sync (and at the start).
    expect(ring.total).toEqual({ pages: 3616, getCalls: 0, clearCalls: 0, reaped: 3885, resets: 11, fullEvents: 9 });
    expect(ring.stores).toBe(3924);
    expect(bitmap.stores).toBe(3924);
    // The report shows the same words.
    expect(renderHtmlReport(runs[1], { columns: 8, pagesPerCell: 2048, lowPages: 16384, ramPages: 16384, rows: [] }))
      .toContain(JSON.stringify(describeCpuLog(manual, runs[1].config)).slice(1, -1));
    expect(formatSummary(runs[2])).toContain('  cpu dirty log:   dirty ring (256 entries per vCPU), 2 vCPUs, 3924 guest stores; 3616 pages over 2 harvests: '
      + '3885 entries reaped, 9 ring-full exits, 11 resets');
  });

  it('clears in chunks of 2^clear-bitmap-shift pages, only where it fetched bits', async () => {
    // 16384 pages in 256 chunks of 64: a sweep's pages lie in few of them.
    const s = await run(config({ cpuLog: 'manual', clearBitmapShift: 6, workload: 'sweep' }));
    expect(s.cpuLog.rounds.map((r) => [r.pages, r.clearCalls])).toEqual([[3080, 49], [944, 15]]);
    const u = await run(config({ cpuLog: 'manual', clearBitmapShift: 6 }));
    expect(u.cpuLog.rounds.map((r) => [r.pages, r.clearCalls])).toEqual([[2790, 256], [826, 247]]);
  });

  it('spreads a 16 GiB guest\'s writes over the vCPUs without a frame for each page written', async () => {
    const engine = await createEngine();
    const s = simulate(engine, { ...defaultConfig(), maxRounds: 2, downtimeLimit: 0.001 }).summary;
    expect(s.cpuLog.stores).toBeGreaterThan(1_000_000);
    // The workload's stores are zeros: the heap holds the logs and the maps, not 4 KiB a page.
    expect(s.engine.peakHeapBytes).toBeLessThan(16 * MiB);
  });
});

/** A bare guest: 8 MiB of RAM below the hole (one slot), or two slots around a small hole. */
async function guest(mode: CpuLogMode, lowMemory: number, ringSize = 256, vcpus = 3) {
  const engine = await createEngine();
  const proc = engine.createProcess();
  const layout = new GuestLayout(8 * MiB, lowMemory);
  const base = proc.mmap(BigInt(layout.ramBytes));
  const g = new KvmGuest(proc, engine.core, layout, base, { mode, vcpus, dirtyRingSize: ringSize, clearBitmapShift: 6 });
  const into = DirtyBitmap.create(engine.core, layout.gpaPages);
  g.startLogging(into);
  return { engine, proc, layout, g, into };
}

/**
 * Four syncs of random stores (batches and ranges) on guest `g`: null when each sync reported
 * exactly the pages stored to since the last one, else what differed.
 */
function exercise(g: KvmGuest, layout: GuestLayout, into: DirtyBitmap, seed: number): string | null {
  const prng = new Prng(seed);
  for (let sync = 0; sync < 4; sync++) {
    const want = new Set<number>();
    for (let b = 0; b < 3; b++) {
      const n = 1 + prng.below(900);
      const pages = new Uint32Array(n);
      prng.fillBelow(pages, 0, n, layout.ramPages);
      layout.toGpaPages(pages, n);
      pages.forEach((p) => want.add(p));
      g.store(pages, 0, n);
      layout.forEachGpaRange(prng.below(layout.ramPages - 64), 1 + prng.below(64), (f, c) => {
        for (let i = 0; i < c; i++) want.add(f + i);
        g.store(null, f, c);
      });
    }
    const s = g.sync(into);
    const runs = into.runs();
    const got: number[] = [];
    for (let i = 0; i < runs.length; i += 2) for (let k = 0; k < runs[i + 1]; k++) got.push(runs[i] + k);
    const expected = [...want].sort((a, b) => a - b);
    if (got.join() !== expected.join() || s.pages !== want.size) return `seed ${seed} sync ${sync}: ${got.length} pages reported, ${want.size} stored to`;
    into.clear();
  }
  return null;
}

describe('the CPU log invariant: every page stored to since a sync is in the next sync', () => {
  for (const mode of MODES) {
    it(`${mode}: 30 seeds, two slots around a hole, batches and ranges, rings that fill`, async () => {
      for (let seed = 1; seed <= 30; seed++) {
        const { layout, g, into } = await guest(mode, 3 * MiB);
        expect(exercise(g, layout, into, seed)).toBeNull();
      }
    });
  }

  it('can fail: a sync that misses the second slot is caught', async () => {
    const { layout, g, into } = await guest('manual', 3 * MiB);
    const h = (g as unknown as { harvester: { slots: unknown[] } }).harvester;
    h.slots = h.slots.slice(0, 1);
    expect(exercise(g, layout, into, 1)).toMatch(/^seed 1 sync 0: \d+ pages reported, \d+ stored to$/);
  });
});

describe('guest stores of zeros', () => {
  async function rig() {
    const { engine, proc, g } = await guest('bitmap', 8 * MiB);
    const frames = () => (engine as Engine).core.x.um_frames(proc.um.handle);
    return { proc, g, frames, base: (g as unknown as { slots: { uaddr: bigint }[] }).slots[0].uaddr };
  }

  it('need no frame in a page never written, and store real bytes where one is', async () => {
    const { proc, g, frames, base } = await rig();
    const before = frames();
    g.store(Uint32Array.of(10, 11, 12), 0, 3);
    expect(frames()).toBe(before);
    expect([...proc.read(base + 10n * 4096n, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    // Stores whose pages are `valued` carry a sequence number: the page gets a frame.
    const valued = DirtyBitmap.create(proc.engine.core, 4096);
    valued.set(11);
    g.valued = valued;
    g.store(Uint32Array.of(11), 0, 1);
    expect(frames()).toBe(before + 1);
    const v = new DataView(proc.read(base + 11n * 4096n, 8).buffer).getBigUint64(0, true);
    expect(v).toBe(4n); // the fourth store
    // A zero store into a page that has a frame writes its zeros.
    g.valued = null;
    g.store(Uint32Array.of(11), 0, 1);
    expect([...proc.read(base + 11n * 4096n, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(frames()).toBe(before + 1);
  });
});

describe('guest stores from the core they are made in', () => {
  // The simulator hands KvmGuest the VMM's KvmProcess (vmmProcess), not the Process itself.
  async function rig(guestCore?: (e: Engine) => Promise<Engine['core']>) {
    const engine = await createEngine();
    const proc = engine.createProcess();
    const layout = new GuestLayout(8 * MiB, 8 * MiB);
    const base = proc.mmap(BigInt(layout.ramBytes));
    const kp = vmmProcess(proc);
    const core = guestCore ? await guestCore(engine) : engine.core;
    const make = () => new KvmGuest(kp, core, layout, base, { mode: 'bitmap', vcpus: 2, dirtyRingSize: 256, clearBitmapShift: 6 });
    return { engine, kp, layout, make };
  }

  it('through the VMM\'s process of the same engine: each batch stored in place, none copied out', async () => {
    const { engine, kp, layout, make } = await rig();
    const inPlace = vi.spyOn(kp, 'vcpuWriteManyAt');
    const copied = vi.spyOn(kp, 'vcpuWriteMany');
    const g = make();
    const into = DirtyBitmap.create(engine.core, layout.gpaPages);
    g.startLogging(into);
    g.store(Uint32Array.from({ length: 1000 }, (_, i) => 2 * i), 0, 1000);
    expect(inPlace.mock.calls.map((c) => c[3])).toEqual([500, 500]); // one batch per vCPU
    expect(copied).not.toHaveBeenCalled();
    expect(g.sync(into).pages).toBe(1000);
    expect(into.test(1998)).toBe(true);
    expect(into.test(1999)).toBe(false);
  });

  it('refuses a process whose engine runs in another core, before any call', async () => {
    const { kp, make } = await rig(async () => (await createEngine()).core);
    const open = vi.spyOn(kp, 'open');
    expect(make).toThrow('KvmGuest: the process is in an engine whose core is not the guest\'s');
    expect(open).not.toHaveBeenCalled();
  });
});

describe('--cpu-log options', () => {
  const bad: [string[], string][] = [
    [['--cpu-log', 'pml'], '--cpu-log: must be one of bitmap, manual, ring, got "pml"'],
    [['--dirty-ring-size', '1000'], '--dirty-ring-size: must be a power of two, got 1000'],
    [['--dirty-ring-size', '128'], '--dirty-ring-size: must be between 256 and 65536, got 128'],
    [['--dirty-ring-size', '131072'], '--dirty-ring-size: must be between 256 and 65536, got 131072'],
    [['--clear-bitmap-shift', '5'], '--clear-bitmap-shift: must be between 6 and 31, got 5'],
    [['--clear-bitmap-shift', '32'], '--clear-bitmap-shift: must be between 6 and 31, got 32'],
    [['--gpu-pt-pages', '70000'], '--gpu-pt-pages: must be between 0 and 65536, got 70000'],
    [['--memory', '64MiB', '--vgpu-region', '16MiB', '--gpu-pt-pages', '4097'], '--gpu-pt-pages: must fit in the vGPU region (4096 pages)'],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(' ')}`, () => {
      expect(() => parseSimulateOptions(argv)).toThrow(message);
    });
  }

  it('defaults to manual protect, 4096-entry rings and 1 GiB clear chunks', () => {
    const c = parseSimulateOptions([]).config;
    expect([c.cpuLog, c.dirtyRingSize, c.clearBitmapShift, c.gpuPtPages, c.gpuPtRate]).toEqual(['manual', 4096, 18, 16, 0]);
  });
});

describe('the CPU log under memory pressure', () => {
  for (const mode of MODES) {
    it(`${mode}: a store or sync that fails for want of memory loses no page; redone, the sync has them all`, async () => {
      let failures = 0;
      for (let n = 1; n < 60; n++) {
        const { engine, layout, g, into } = await guest(mode, 3 * MiB, 256, 2);
        const pages = new Uint32Array(700);
        new Prng(n).fillBelow(pages, 0, pages.length, layout.ramPages);
        layout.toGpaPages(pages, pages.length);
        const want = [...new Set(pages)].sort((a, b) => a - b);
        engine.failNthAllocation(n);
        let failed = false;
        try {
          g.store(pages, 0, pages.length);
          g.sync(into);
        } catch {
          failed = true;
        }
        engine.failNthAllocation(0);
        if (failed) {
          failures++;
          // The VMM redoes what failed: the guest's stores, then the sync.
          g.store(pages, 0, pages.length);
          g.sync(into);
        }
        const runs = into.runs();
        const got: number[] = [];
        for (let i = 0; i < runs.length; i += 2) for (let k = 0; k < runs[i + 1]; k++) got.push(runs[i] + k);
        expect(got, `n ${n}`).toEqual(want);
      }
      expect(failures).toBeGreaterThan(0);
    });
  }
});
