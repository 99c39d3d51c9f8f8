// simulate --tracking type1|device|iommufd: exact figures of small seeded runs in each mode, the
// truth property (never an under-report, over-reports only from coarse pages or type1's rules),
// QEMU's logging ranges and per-section reads, the trackers on their own against the engine, the
// option rules, and runs under memory pressure.
import { describe, expect, it } from 'vitest';
import { createEngine, errno } from '../src/index.js';
import { defaultConfig, parseSimulateOptions } from '../src/cli/options.js';
import { formatSummary } from '../src/cli/summary_text.js';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import type { SimConfig } from '../src/sim/config.js';
import { loggingRanges } from '../src/sim/device_logging_tracker.js';
import { GuestLayout } from '../src/sim/guest_layout.js';
import { createTracker, passthroughGroup, PT_DMA_CHUNK } from '../src/sim/passthrough.js';
import { sectionsOf } from '../src/sim/section_reader.js';
import { simulate, type SimEngine } from '../src/sim/simulator.js';
import { TruthLog } from '../src/sim/tracking.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** 64 MiB guest, half of it above 4 GiB, no vGPU, a slow link and a light uniform CPU workload. */
function config(o: Partial<SimConfig>): SimConfig {
  return {
    ...defaultConfig(), memory: 64 * MiB, lowMemory: 32 * MiB, vgpu: false, bandwidth: 64 * MiB, dirtyRate: 8 * MiB,
    workload: 'uniform', passthrough: 'unpinned', passthroughDmaRate: 4 * MiB, ...o,
  };
}

async function run(c: SimConfig) {
  const engine = await createEngine();
  return simulate(engine, c).summary;
}

/** Per harvest: [pages reported, truly written, over-reported]. */
const figures = (s: Awaited<ReturnType<typeof run>>) => s.roundsDetail.slice(1).map((r) => [r.dirtyPages, r.truePages, r.overReported]);

describe('exact figures of seeded 64 MiB runs', () => {
  it('type1, device never pins: every harvest all-dirty, everything beyond the truth over-reported', async () => {
    const s = await run(config({ tracking: 'type1', maxRounds: 10 }));
    expect(s.converged).toBe(false);
    expect(s.rounds).toBe(10);
    expect(s.allDirtyRounds).toBe(10);
    expect(s.roundsDetail.slice(1).every((r) => r.dirtyPages === 16384 && r.overReported === 16384 - r.truePages)).toBe(true);
    expect(figures(s).slice(0, 3)).toEqual([[16384, 2095, 14289], [16384, 2787, 13597], [16384, 2825, 13559]]);
    expect(s.tracking).toEqual({
      mode: 'type1', mechanism: 'type1, the container\'s GET_BITMAP, 4 KiB pages', pageSize: 4096, trackerRanges: null,
      reportedPages: 163840, truePages: 26899, overReported: 136941, underReported: 0,
    });
  });

  it('type1, pinning device: its DMA stays in its pinned ring, reported exactly', async () => {
    const s = await run(config({ tracking: 'type1', passthrough: 'pinning' }));
    expect([s.converged, s.rounds]).toEqual([true, 1]);
    expect(figures(s)).toEqual([[1464, 1464, 0]]);
  });

  it('device logging and iommufd at 4 KiB report exactly the truth, and the same pages', async () => {
    const d = await run(config({ tracking: 'device' }));
    const i = await run(config({ tracking: 'iommufd' }));
    expect([d.converged, d.rounds, d.bytesSent]).toEqual([true, 1, 59064696]);
    expect(figures(d)).toEqual([[2095, 2095, 0]]);
    expect(figures(i)).toEqual(figures(d));
    expect([i.rounds, i.bytesSent, i.downtimeS]).toEqual([d.rounds, d.bytesSent, d.downtimeS]);
    expect(d.tracking).toMatchObject({ mode: 'device', trackerRanges: 4, reportedPages: 2095, truePages: 2095, overReported: 0 });
    expect(i.tracking).toMatchObject({ mode: 'iommufd', trackerRanges: null, reportedPages: 2095, overReported: 0 });
  });

  it('one tracker range over a 32-bit and a 64-bit extent at 2 MiB: over-reported, and it no longer converges', async () => {
    const s = await run(config({ tracking: 'device', trackerRanges: 1, trackingPageSize: 2 * MiB, maxRounds: 10 }));
    expect([s.converged, s.rounds]).toEqual([false, 10]);
    expect(figures(s).slice(0, 3)).toEqual([[12210, 2095, 10115], [12648, 2123, 10525], [12213, 2196, 10017]]);
    expect(s.tracking).toMatchObject({ reportedPages: 134718, truePages: 22952, overReported: 111766, underReported: 0 });
  });

  it('a fast device at 2 MiB reports every page, which is not type1\'s all-dirty rule', async () => {
    const s = await run(config({ tracking: 'iommufd', trackingPageSize: 2 * MiB, passthroughDmaRate: 32 * MiB, maxRounds: 2 }));
    expect(s.roundsDetail.slice(1).map((r) => r.dirtyPages)).toEqual([16384, 16384]);
    expect(s.allDirtyRounds).toBe(0);
  });

  it('2 MiB pages with a slow device: whole 2 MiB blocks of device pages, the same under both mechanisms', async () => {
    const c = config({ dirtyRate: 0, passthroughDmaRate: MiB, trackingPageSize: 2 * MiB, memory: 256 * MiB, lowMemory: 128 * MiB });
    const blocks: number[][] = [];
    const engine = await createEngine();
    const d = simulate(engine, { ...c, tracking: 'device', trackerRanges: 1 }, {
      onHarvest: (_round, report) => {
        const counts = [];
        for (let b = 0; b < report.pages / 512; b++) counts.push(report.countRange(b * 512, 512));
        blocks.push(counts);
      },
    }).summary;
    expect(blocks.flat().every((n) => n === 0 || n === 512)).toBe(true);
    // 44 writes of 64 KiB in 38 distinct 2 MiB blocks, then 19 in 16, then 8 in 8.
    expect(figures(d)).toEqual([[19456, 704, 18752], [8192, 304, 7888], [4096, 128, 3968]]);
    const i = await run({ ...c, tracking: 'iommufd' });
    expect(figures(i)).toEqual(figures(d));
  });

  it('the tracker\'s merge over the PCI hole reports nothing more: no DMA lands there and QEMU reads RAM sections only', async () => {
    const one = await run(config({ tracking: 'device', trackerRanges: 1 }));
    const four = await run(config({ tracking: 'device', trackerRanges: 4 }));
    expect(figures(one)).toEqual(figures(four));
  });

  it('prints the mechanism and the over-report in the text summary', async () => {
    const text = formatSummary(await run(config({ tracking: 'device', trackingPageSize: 64 * 1024 })));
    expect(text).toContain('  dirty tracking:  device DMA logging, a tracker of 4 ranges, 64 KiB pages\n' +
      '                   2095 pages reported, 2095 truly written, 0 over-reported (0.0 %), 0 under-reported\n');
  });
});

describe('the truth', () => {
  it('never under-reports, for many seeds, every mechanism, page size and range limit', async () => {
    for (let seed = 1; seed <= 3; seed++) {
      for (const tracking of ['type1', 'device', 'iommufd'] as const) {
        for (const trackingPageSize of tracking === 'type1' ? [4096] : [4096, 64 * 1024, 2 * MiB]) {
          const c = config({
            seed, tracking, trackingPageSize, trackerRanges: 1 + (seed % 3), maxRounds: 4, workload: 'mixed', dirtyRate: 16 * MiB,
            lowMemory: (16 + 4 * seed) * MiB + 4096 * seed, passthroughDmaRate: seed * 2 * MiB, vgpu: seed % 2 === 0, vgpuRegion: 16 * MiB, vgpuPinned: 4 * MiB,
          });
          const s = await run(c);
          expect(s.tracking.underReported).toBe(0);
          for (const r of s.roundsDetail.slice(1)) {
            expect(r.overReported).toBe(r.dirtyPages - r.truePages);
            expect(r.overReported).toBeGreaterThanOrEqual(0);
            // Device logging and iommufd at 4 KiB, without the vGPU's pins: exactly the truth.
            if (tracking !== 'type1' && trackingPageSize === 4096 && !c.vgpu) expect(r.overReported).toBe(0);
          }
        }
      }
    }
  });

  it('throws on a report that misses a truly written page, and counts the rest as over-reported', async () => {
    const engine = await createEngine();
    const truth = new TruthLog(engine.core, 64);
    const report = DirtyBitmap.create(engine.core, 64);
    truth.markRange(3, 2);
    report.setRange(2, 4);
    expect(truth.settle(report)).toEqual({ truePages: 2, overReported: 2 });
    truth.markRange(10, 1);
    truth.markRange(20, 1);
    report.clear();
    report.set(10);
    expect(() => truth.settle(report)).toThrow('dirty tracking under-reported 1 truly written page(s)');
    expect(truth.bitmap.count()).toBe(0);
  });
});

describe('QEMU\'s set-up', () => {
  it('builds one logging range below 4 GiB and one above, as min/max pairs', () => {
    const slots = [{ gpa: 0, size: 0x8000_0000, firstRamPage: 0 }, { gpa: 0x1_0000_0000, size: 0x1_8000_0000, firstRamPage: 0x80000 }];
    expect(loggingRanges(slots, 4096)).toEqual([{ iova: 0n, length: 0x8000_0000n }, { iova: 0x1_0000_0000n, length: 0x1_8000_0000n }]);
    expect(loggingRanges(slots.slice(0, 1), 4096)).toEqual([{ iova: 0n, length: 0x8000_0000n }]);
  });

  it('widens ranges and sections to the tracking page size, merging back only the slot', () => {
    const layout = new GuestLayout(64 * MiB + 4096, 32 * MiB + 4096);
    expect(loggingRanges(layout.slots, 2 * MiB)).toEqual([{ iova: 0n, length: 34n << 20n }, { iova: 0x1_0000_0000n, length: 32n << 20n }]);
    expect(sectionsOf(layout.slots, 2 * MiB)).toEqual([
      { iova: 0n, length: 34n << 20n, nbits: 17, firstPage: 0, pages: 8193, skip: 0 },
      { iova: 0x1_0000_0000n, length: 32n << 20n, nbits: 16, firstPage: 0x100000, pages: 8192, skip: 0 },
    ]);
  });
});

/** A VMM process with guest RAM mapped, and the passthrough device's tracker under `c`. */
async function trackerRig(c: SimConfig) {
  const engine = await createEngine();
  const layout = new GuestLayout(c.memory, c.lowMemory);
  const proc = engine.createProcess();
  const base = proc.mmap(BigInt(c.memory));
  const group = engine.createGroup(passthroughGroup(c, 'pt0'));
  const tracker = createTracker(engine as unknown as SimEngine, engine.core, proc, base, layout, c, group, 'pt0')!;
  const into = DirtyBitmap.create(engine.core, layout.gpaPages);
  const dev = group.devices[0];
  const harvest = () => {
    into.clear();
    tracker.harvest(into);
    return Array.from(into.runs());
  };
  return { engine, layout, tracker, dev, into, harvest, proc };
}

describe('the trackers against the engine', () => {
  for (const tracking of ['device', 'iommufd'] as const) {
    it(`${tracking}: reports each written page once, from the section's IOVA, in both RAM slots`, async () => {
      const r = await trackerRig(config({ tracking }));
      r.tracker.start();
      expect(r.dev.dmaWrite(0x5000n, new Uint8Array(0x2000))).toBe(0);
      expect(r.dev.dmaWrite(0x1_0000_3000n, Uint8Array.of(1))).toBe(0);
      expect(r.dev.dmaWrite(0x2_0000_0000n, Uint8Array.of(1))).toBe(-errno.EFAULT); // not RAM: an IOMMU fault
      expect(r.harvest()).toEqual([5, 2, 0x100003, 1]);
      expect(r.harvest()).toEqual([]);
      r.tracker.stop();
      r.tracker.dispose();
    });

    it(`${tracking}: at 2 MiB a one-byte write reports its whole 2 MiB block, clipped to RAM`, async () => {
      const r = await trackerRig(config({ tracking, trackingPageSize: 2 * MiB, memory: 64 * MiB - 4096 * 3 }));
      r.tracker.start();
      expect(r.dev.dmaWrite(0x30_0001n, Uint8Array.of(1))).toBe(0);
      expect(r.dev.dmaWrite(0x1_01ff_c000n, Uint8Array.of(1))).toBe(0); // the last 2 MiB block, 3 pages short
      expect(r.harvest()).toEqual([512, 512, 0x101e00, 509]);
      r.tracker.stop();
      r.tracker.dispose();
    });
  }

  it('iommufd: the read before the final unmap uses NO_CLEAR and counts what no harvest took', async () => {
    const r = await trackerRig(config({ tracking: 'iommufd' }));
    r.tracker.start();
    expect(r.dev.dmaWrite(0x1000n, new Uint8Array(PT_DMA_CHUNK))).toBe(0);
    r.harvest();
    expect(r.dev.dmaWrite(0x1_0000_0000n, new Uint8Array(0x3000))).toBe(0);
    r.tracker.stop();
    r.tracker.dispose();
    expect((r.tracker as unknown as { leftAtUnmap: number }).leftAtUnmap).toBe(3);
    expect(r.dev.dmaWrite(0x1000n, Uint8Array.of(1))).toBe(-errno.EFAULT); // unbound: DMA is blocked
  });

  it('device: STOP ends logging, and the tear-down leaves the device without mappings', async () => {
    const r = await trackerRig(config({ tracking: 'device' }));
    r.tracker.start();
    r.tracker.stop();
    r.tracker.dispose();
    expect(r.dev.dmaWrite(0x1000n, Uint8Array.of(1))).toBe(-errno.EFAULT);
  });
});

describe('the trackers under memory pressure', () => {
  for (const [tracking, trackingPageSize] of [['device', 4096], ['device', 2 * MiB], ['iommufd', 4096], ['iommufd', 2 * MiB]] as const) {
    it(`${tracking} at ${trackingPageSize / 1024} KiB: a failed set-up keeps nothing; a harvest allocates nothing after its report calls`, async () => {
      const c = config({ tracking, trackingPageSize });
      const engine = await createEngine();
      const layout = new GuestLayout(c.memory, c.lowMemory);
      const proc = engine.createProcess();
      const base = proc.mmap(BigInt(c.memory));
      let n = 1;
      let tracker = null;
      let group = null;
      for (; !tracker; n++) {
        group = engine.createGroup(passthroughGroup(c, `pt${n}`));
        const live = engine.core.x.heap_live();
        engine.failNthAllocation(n);
        try {
          tracker = createTracker(engine as unknown as SimEngine, engine.core, proc, base, layout, c, group, `pt${n}`)!;
        } catch (e) {
          expect((e as Error).message).toMatch(/ENOMEM|out of memory/i);
          expect(engine.core.x.heap_live(), `n=${n}: ${(e as Error).message}`).toBe(live);
        }
        engine.failNthAllocation(0);
      }
      expect(n).toBeGreaterThan(3);
      const dev = group!.devices[0];
      const into = DirtyBitmap.create(engine.core, layout.gpaPages);
      tracker.start();
      expect(dev.dmaWrite(0x1_0000_0000n, Uint8Array.of(1))).toBe(0);
      tracker.harvest(into); // frames the VMM's bitmap buffer
      into.clear();
      expect(dev.dmaWrite(0x3000n, Uint8Array.of(1))).toBe(0);
      engine.failNthAllocation(1);
      tracker.harvest(into);
      expect(engine.core.x.heap_fail_pending()).not.toBe(0); // nothing allocated: the failure never landed
      engine.failNthAllocation(0);
      expect(into.count()).toBe(trackingPageSize / 4096);
      expect(into.test(3)).toBe(true);
      tracker.stop();
      tracker.dispose();
    });
  }
});

describe('option rules', () => {
  const fails = (argv: string[]) => {
    try {
      parseSimulateOptions(argv);
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };

  it.each([
    [['--tracking', 'device', '--passthrough', 'none'], '--passthrough: none leaves --tracking device nothing to track: it tracks the passthrough device\'s own DMA'],
    [['--tracking', 'iommufd', '--passthrough', 'pinning'], '--passthrough: pinning narrows type1\'s report only; with --tracking iommufd the device is tracked without pins: use --passthrough unpinned'],
    [['--tracking-page-size', '2MiB'], '--tracking-page-size: type1 reports in the IOMMU\'s smallest page, 4KiB: GET_BITMAP refuses any other size'],
    [['--tracking', 'device', '--tracking-page-size', '12KiB'], '--tracking-page-size: must be a power of two from 4KiB to 2MiB'],
    [['--tracking', 'iommufd', '--tracking-page-size', '4MiB'], '--tracking-page-size: must be a power of two from 4KiB to 2MiB'],
    [['--tracker-ranges', '0'], '--tracker-ranges: must be between 1 and 256, got 0'],
    [['--tracking', 'device', '--trace', 'run.jsonl'], '--trace: records type1 runs only: a replay trace has no device-logging or iommufd events, so --tracking device cannot be replayed'],
    [['--passthrough-dma-rate', '5GiB/s'], '--passthrough-dma-rate: must be at most 4GiB/s'],
  ])('rejects %j naming the option', (argv, message) => {
    expect(fails(argv)).toContain(message);
  });

  it('any --tracking implies an unpinned passthrough device unless --passthrough is given', () => {
    expect(parseSimulateOptions(['--tracking', 'iommufd']).config).toMatchObject({ tracking: 'iommufd', passthrough: 'unpinned' });
    expect(parseSimulateOptions(['--tracking', 'device', '--tracking-page-size', '2MiB', '--tracker-ranges', '1']).config)
      .toMatchObject({ tracking: 'device', passthrough: 'unpinned', trackingPageSize: 2 * MiB, trackerRanges: 1 });
    expect(parseSimulateOptions(['--tracking', 'type1']).config).toMatchObject({ tracking: 'type1', passthrough: 'unpinned' });
    expect(parseSimulateOptions(['--tracking', 'type1', '--passthrough', 'none']).config).toMatchObject({ tracking: 'type1', passthrough: 'none' });
    expect(parseSimulateOptions([]).config).toMatchObject({ tracking: 'type1', passthrough: 'none', passthroughDmaRate: 32 * MiB });
  });

  it('the library refuses the same combinations before setting anything up', async () => {
    const engine = await createEngine();
    const heap = engine.memoryInUse();
    expect(() => simulate(engine, config({ tracking: 'device', passthrough: 'none' }))).toThrow(RangeError);
    expect(() => simulate(engine, config({ tracking: 'type1', trackingPageSize: 8192 }))).toThrow('--tracking-page-size: type1 reports');
    expect(() => simulate(engine, config({ tracking: 'iommufd' }), { trace: () => {} })).toThrow('--trace records type1 runs only');
    expect(engine.memoryInUse()).toBe(heap);
  });
});

describe('under memory pressure', () => {
  it('a run either gives the figures of a run with memory, or fails with ENOMEM: never silently different', async () => {
    for (const tracking of ['device', 'iommufd'] as const) {
      const c = config({ tracking, trackingPageSize: 64 * 1024, maxRounds: 3 });
      const want = figures(await run(c));
      let failed = 0;
      for (let n = 1; n <= 300; n += 11) {
        const engine = await createEngine();
        engine.failNthAllocation(n);
        try {
          expect(figures(simulate(engine, c).summary)).toEqual(want);
        } catch (e) {
          expect(String((e as Error).message)).toMatch(/ENOMEM|out of (host )?memory|cannot allocate/i);
          failed++;
        }
      }
      expect(failed).toBeGreaterThan(0);
    }
  });
});

// The guest size the README and docs quote for --tracking examples stays runnable: 16 GiB default.
it('runs the default 16 GiB guest under device logging at 2 MiB within the test budget', async () => {
  const s = await run({ ...defaultConfig(), tracking: 'device', passthrough: 'unpinned', trackingPageSize: 2 * MiB, maxRounds: 3 });
  expect(s.tracking.underReported).toBe(0);
  expect(s.tracking.overReported).toBeGreaterThan(0);
  expect(s.config.memory).toBe(16 * GiB);
});
